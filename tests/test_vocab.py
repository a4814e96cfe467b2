"""Vocab: SentencePiece training with [CLS]/[SEP]/[MASK] and a pad id; WordPiece vocab.txt; the CLI."""

import hashlib
import json
import os
import sys

import pytest

from hvd_pretrain.corpus import default_corpus
from hvd_pretrain.data import DataError
from hvd_pretrain.vocab import default_character_coverage, load_tokenizer, train_sentencepiece
import proc


def _head_of_default_corpus(path, num_bytes):
    with open(default_corpus(), encoding="utf-8") as f:
        text = f.read(num_bytes)
    text = text[:text.rfind("\n\n") + 1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    return _head_of_default_corpus(tmp_path_factory.mktemp("corpus") / "small.txt", 300_000)


@pytest.fixture(scope="module")
def spm_dir(small_corpus, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("vocab"))
    train_sentencepiece([small_corpus], out, 2000, seed=1, num_threads=1)
    return out


def test_special_ids_and_size(spm_dir):
    tok = load_tokenizer(spm_dir)
    assert tok.kind == "sentencepiece"
    assert (tok.vocab_size, tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (2000, 0, 1, 2, 3, 4)
    assert [tok.id_to_piece(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    with open(os.path.join(spm_dir, "spm.model"), "rb") as f:
        assert tok.fingerprint == hashlib.sha256(f.read()).hexdigest()
    assert set(tok.special_ids.tolist()) >= {0, 1, 2, 3, 4}
    assert not set(tok.random_ids.tolist()) & {0, 1, 2, 3, 4}


def test_encode_and_word_starts(spm_dir):
    tok = load_tokenizer(spm_dir)
    ids = tok.encode("Return the absolute version of a path.")
    assert ids and all(5 <= i < tok.vocab_size for i in ids)
    pieces = [tok.id_to_piece(i) for i in ids]
    assert [tok.is_word_start(i) for i in ids] == [p.startswith("\u2581") for p in pieces]
    assert tok.is_word_start(ids[0])
    # control symbols written in text are not turned into control ids
    assert tok.mask_id not in tok.encode("[MASK] [CLS] [SEP]")
    assert tok.encode_batch(["a path", "the file"]) == [tok.encode("a path"), tok.encode("the file")]


def test_training_is_reproducible(small_corpus, spm_dir, tmp_path):
    train_sentencepiece([small_corpus], str(tmp_path), 2000, seed=1, num_threads=1)
    assert load_tokenizer(str(tmp_path)).fingerprint == load_tokenizer(spm_dir).fingerprint


def test_bpe_and_user_defined_symbols(small_corpus, tmp_path):
    train_sentencepiece([small_corpus], str(tmp_path), 1500, model_type="bpe", user_defined_symbols=["<url>"])
    tok = load_tokenizer(str(tmp_path))
    assert tok.vocab_size == 1500 and tok.id_to_piece(5) == "<url>"
    assert 5 in tok.encode("see <url> for details")


def test_character_coverage_detects_cjk(tmp_path):
    zh, en = tmp_path / "zh.txt", tmp_path / "en.txt"
    zh.write_text("我们在北京大学学习自然语言处理。\n今天天气很好。\n" * 50, encoding="utf-8")
    en.write_text("We study natural language processing.\nThe weather is fine.\n" * 50, encoding="utf-8")
    assert default_character_coverage([str(zh)]) == 0.9995
    assert default_character_coverage([str(en)]) == 1.0


def test_bad_inputs_are_one_line_errors(small_corpus, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    cases = [
        (([str(tmp_path / "missing.txt")], 2000), "not found"),
        (([str(empty)], 2000), "empty"),
        (([small_corpus], 8), "too small"),
        (([small_corpus], 500_000), "SentencePiece training failed"),
    ]
    for (files, size), text in cases:
        with pytest.raises(DataError) as info:
            train_sentencepiece(files, str(tmp_path / "out"), size)
        assert text in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DataError, match="run hvd-data vocab"):
        load_tokenizer(str(tmp_path / "nowhere"))


def _write_wordpiece_vocab(path, words):
    specials = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = specials + list("abcdefghijklmnopqrstuvwxyz.,") + words + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    path.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return pieces


def test_wordpiece_vocab(tmp_path):
    pieces = _write_wordpiece_vocab(tmp_path / "vocab.txt", ["the", "path", "run", "##ning", "return"])
    tok = load_tokenizer(str(tmp_path))
    assert tok.kind == "wordpiece" and tok.do_lower_case  # no capitals in the vocab: uncased
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 2, 3, 4, 5)
    ids = tok.encode("Running the path.")
    assert [pieces[i] for i in ids] == ["run", "##ning", "the", "path", "."]
    assert [tok.is_word_start(i) for i in ids] == [True, False, True, True, True]
    assert 1 not in tok.random_ids  # [unused0] is never a random replacement
    ids, normalized, offsets, _ = tok.encode_normalized("Running the path.")
    assert normalized == "running the path." and offsets == [0, 3, 8, 12, 16]
    assert ids == tok.encode("Running the path.")


TRICKY_TEXTS = [
    "Running the path.", "  double  spaces  and trailing ", "tab\tseparated\ttext", "naïve café résumé",
    "ΣΊΣΥΦΟΣ ΟΔΟΣ ends in sigma", "中文字符测试 mixed中文text", "emoji 😀 here😀", "control\x00chars\x1fhere\x7f",
    "a" * 150 + " long word", "[MASK] literal [SEP]x", "", " ", "x \u0301y combining after a space",
    "non\u00a0breaking zero\u200bwidth", "dashes—and–hyphens,commas.", "line\u2028separator\rreturn",
]


@pytest.mark.parametrize("cased", [False, True])
def test_wordpiece_encode_flat_equals_encoding_each_text(tmp_path, cased, monkeypatch):
    from hvd_pretrain.vocab import piece_cache

    monkeypatch.setattr(piece_cache, "MAX_PIECES", 40)  # the third round overflows the cache: it starts afresh
    words = ["the", "path", "run", "##ning", "return", "caf", "##é", "na", "##ï", "中", "文"]
    _write_wordpiece_vocab(tmp_path / "vocab.txt", words + (["Running", "The", "ΣΊ"] if cased else []))
    tok = load_tokenizer(str(tmp_path))
    assert tok.do_lower_case is not cased
    rounds = (TRICKY_TEXTS, TRICKY_TEXTS[::-1] + ["the path the path run"], ["only new pieces: zebra"],
              ["%d pieces, fresh" % i for i in range(40)])
    for texts in rounds:
        ids, lengths = tok.encode_flat(texts)  # later rounds reuse the pieces cached by earlier ones
        expected = [tok.encode(t) for t in texts]
        assert lengths.tolist() == [len(e) for e in expected]
        assert ids.tolist() == [i for e in expected for i in e]
        assert len(tok._piece_cache) <= max(40, len(set(" ".join(texts).split(" "))))
    assert tok.encode_flat([])[0].size == 0


def test_wordpiece_encode_flat_on_real_text_with_a_trained_vocab(small_corpus, tmp_path):
    from tokenizers import BertWordPieceTokenizer

    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train([small_corpus], vocab_size=3000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                  show_progress=False)
    trainer.save_model(str(tmp_path))
    tok = load_tokenizer(str(tmp_path))
    with open(small_corpus, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    ids, lengths = tok.encode_flat(lines)
    expected = tok.encode_batch(lines)
    assert lengths.tolist() == [len(e) for e in expected]
    assert ids.tolist() == [i for e in expected for i in e]


def test_wordpiece_vocab_without_mask_is_refused(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n")
    with pytest.raises(DataError, match=r"lacks \[MASK\]"):
        load_tokenizer(str(tmp_path))


def test_cli_trains_and_reports_heldout_coverage(small_corpus, tmp_path):
    from hvd_pretrain.cli import data_vocab

    out = tmp_path / "v"
    code = data_vocab.main(["hvd-data vocab", "--input_files=" + small_corpus, "--out=%s" % out,
                            "--vocab_size=1200", "--heldout_every=50"])
    assert code == 0
    report = json.loads((out / "vocab_report.json").read_text())
    heldout = report["heldout"]
    assert heldout["sentences"] > 20
    assert 0.0 <= heldout["unknown_rate"] < 0.01
    assert 1.0 <= heldout["tokens_per_word"] < 3.0
    assert report["training"]["character_coverage"] == 1.0
    assert load_tokenizer(str(out)).vocab_size == 1200


def test_cli_bad_flag_value_exits_2(tmp_path, capsys):
    from hvd_pretrain.cli import data_vocab

    code = data_vocab.main(["hvd-data vocab", "--input_files=%s" % (tmp_path / "none.txt"), "--out=%s" % tmp_path])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: input file not found") and "\n" not in err


@pytest.mark.timeout(60)
def test_cli_help_does_not_import_tensorflow():
    code = ("import sys; from hvd_pretrain.cli import data; rc = data.run(['hvd-data', SUB, '--help']); "
            "assert rc == 0, rc; assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    for sub in ("vocab", "create", "inspect"):
        result = proc.run([sys.executable, "-c", code.replace("SUB", repr(sub))], timeout=50)
        assert "--out" in result.stdout or "--data" in result.stdout
