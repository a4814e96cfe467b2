"""hvd-data create: instances, labels, manifest, determinism, restart, bad input. No TensorFlow here."""

import json
import os
import sys

import numpy as np
import pytest

from datatools import digest as _digest
from datatools import masked_multitoken_words
from datatools import records as _records
from hvd_pretrain.data import (DataConfig, DataError, create_pretraining_data, list_shards, read_manifest,
                               shards_for_rank, verify_shards)
from hvd_pretrain.vocab import load_tokenizer


@pytest.fixture(scope="module")
def nsp_data(corpus_file, vocab, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("nsp"))
    manifest = create_pretraining_data([corpus_file], vocab, out, DataConfig(dupe_factor=3, num_shards=4))
    return out, manifest


def test_records_have_googles_features_and_layout(nsp_data, vocab):
    out, manifest = nsp_data
    tok = load_tokenizer(vocab)
    records = _records(out)
    assert len(records) == manifest["num_instances"] > 3000
    names = {"input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
             "masked_lm_weights", "next_sentence_labels"}
    for rec in records[:500]:
        assert set(rec) == names
        assert [len(rec[k]) for k in ("input_ids", "input_mask", "segment_ids")] == [128] * 3
        assert [len(rec[k]) for k in ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")] == [20] * 3
        n = sum(rec["input_mask"])
        ids = rec["input_ids"]
        assert ids[0] == tok.cls_id and ids[n - 1] == tok.sep_id and all(i == 0 for i in ids[n:])
        assert ids[:n].count(tok.sep_id) == 2 and rec["segment_ids"][n - 1] == 1
        weights = rec["masked_lm_weights"]
        k = int(sum(weights))
        assert weights[:k] == [1.0] * k and k == min(20, max(1, round(n * 0.15)))
        for pos in rec["masked_lm_positions"][:k]:
            assert 0 < pos < n - 1 and ids[pos] != tok.sep_id and ids[pos] != tok.cls_id
            assert ids[pos] != tok.pad_id


def test_nsp_labels_are_balanced_and_random_next_comes_from_elsewhere(nsp_data):
    _, manifest = nsp_data
    labels = manifest["sentence_labels"]
    total = labels["0"] + labels["1"]
    assert total == manifest["num_instances"]
    assert abs(labels["1"] / total - 0.5) < 0.02


def test_manifest_records_counts_tokenizer_config_and_masking(nsp_data, vocab):
    out, manifest = nsp_data
    assert manifest == read_manifest(out)
    assert manifest["tokenizer_fingerprint"] == load_tokenizer(vocab).fingerprint
    assert manifest["config"]["dupe_factor"] == 3 and manifest["config"]["sentence_objective"] == "nsp"
    counts = verify_shards(list_shards(out), manifest)
    assert [s["instances"] for s in manifest["shards"]] == [counts[f] for f in list_shards(out)]
    masking = manifest["masking_stats"]
    assert abs(masking["mask_rate"] - 0.8) < 0.02 and abs(masking["random_rate"] - 0.1) < 0.02
    assert abs(masking["kept_rate"] - 0.1) < 0.02
    assert manifest["input_stats"]["invalid_utf8_lines"] == 0


@pytest.mark.parametrize("objective", ["sop", "none"])
def test_sop_and_single_segment_objectives(corpus_file, vocab, tmp_path, objective):
    manifest = create_pretraining_data([corpus_file], vocab, str(tmp_path),
                                       DataConfig(dupe_factor=2, num_shards=2, sentence_objective=objective))
    records = _records(str(tmp_path))
    if objective == "sop":
        assert abs(manifest["sentence_label_1_rate"] - 0.5) < 0.02
        assert all(1 in r["segment_ids"] for r in records)
    else:
        assert manifest["sentence_labels"]["1"] == 0
        assert all(set(r["segment_ids"]) == {0} for r in records)
        assert all(r["input_ids"][:sum(r["input_mask"])].count(3) == 1 for r in records)


def test_sop_swaps_real_neighbours(corpus_file, vocab, tmp_path):
    """A swapped SOP pair, put back in order, is contiguous text of one document."""
    tok = load_tokenizer(vocab)
    create_pretraining_data([corpus_file], vocab, str(tmp_path),
                            DataConfig(dupe_factor=1, num_shards=1, sentence_objective="sop", masked_lm_prob=0.01,
                                       max_predictions_per_seq=1, short_seq_prob=0.0))
    with open(corpus_file, encoding="utf-8") as f:
        flat = "".join(tok.id_to_piece(i) for i in tok.encode(" ".join(f.read().split())))
    checked = 0
    for rec in _records(str(tmp_path))[:200]:
        ids = list(rec["input_ids"])
        for pos, orig, w in zip(rec["masked_lm_positions"], rec["masked_lm_ids"], rec["masked_lm_weights"]):
            if w:
                ids[pos] = orig
        n = sum(rec["input_mask"])
        seg = rec["segment_ids"]
        a = [i for i, s in zip(ids[1:n - 1], seg[1:n - 1]) if s == 0 and i != tok.sep_id]
        b = [i for i, s in zip(ids[1:n - 1], seg[1:n - 1]) if s == 1]
        first, second = (b, a) if rec["next_sentence_labels"][0] == 1 else (a, b)
        joined = "".join(tok.id_to_piece(i) for i in first[-3:] + second[:3])
        untruncated = n < 128  # a truncated pair may have lost tokens at the seam
        if untruncated and len(first) >= 3 and len(second) >= 3 and tok.unk_id not in first[-3:] + second[:3]:
            checked += 1
            assert joined.replace("\u2581", "") in flat.replace("\u2581", "")
    assert checked > 100


def test_output_is_the_same_for_one_or_two_workers(corpus_file, vocab, tmp_path, monkeypatch):
    import multiprocessing

    from hvd_pretrain.data import create

    config = DataConfig(dupe_factor=1, num_shards=3, seed=7)
    one = create_pretraining_data([corpus_file], vocab, str(tmp_path / "w1"), config, num_workers=1)
    two = create_pretraining_data([corpus_file], vocab, str(tmp_path / "w2"), config, num_workers=2)
    assert _digest(str(tmp_path / "w1")) == _digest(str(tmp_path / "w2"))
    assert one["shards"] == two["shards"] and two["run"]["num_workers"] == 2
    # freshly spawned workers (what a process with TensorFlow loaded gets) make the same bytes as forked ones
    monkeypatch.setattr(create, "pool_context", lambda: multiprocessing.get_context("spawn"))
    create_pretraining_data([corpus_file], vocab, str(tmp_path / "spawned"), config, num_workers=2)
    assert _digest(str(tmp_path / "spawned")) == _digest(str(tmp_path / "w1"))
    other = create_pretraining_data([corpus_file], vocab, str(tmp_path / "s8"), DataConfig(dupe_factor=1,
                                                                                          num_shards=3, seed=8))
    assert _digest(str(tmp_path / "s8")) != _digest(str(tmp_path / "w1"))
    assert other["num_instances"] > 0


@pytest.mark.timeout(120)
def test_cli_with_two_workers_matches_one_worker_and_shows_progress(corpus_file, vocab, tmp_path):
    """A fresh `hvd-data create` process (no TensorFlow: its workers are forked) with its progress bar."""
    import proc

    config = DataConfig(dupe_factor=2, num_shards=3, seed=3)
    create_pretraining_data([corpus_file], vocab, str(tmp_path / "one"), config, num_workers=1)
    result = proc.run([sys.executable, "-m", "hvd_pretrain.cli.data", "create", "--input_files=" + corpus_file,
                       "--vocab=" + vocab, "--out=%s" % (tmp_path / "cli"), "--dupe_factor=2", "--num_shards=3",
                       "--seed=3", "--num_workers=2"], timeout=100)
    assert _digest(str(tmp_path / "cli")) == _digest(str(tmp_path / "one"))
    manifest = read_manifest(str(tmp_path / "cli"))
    last_bar = [line for line in result.stdout.replace("\r", "\n").splitlines() if "instances=" in line][-1]
    assert "100%" in last_bar and "shards=3/3" in last_bar
    assert "instances=%d" % manifest["num_instances"] in last_bar and "documents=%d" % manifest["documents"] in last_bar


def test_progress_reports_bytes_documents_and_instances(corpus_file, vocab, tmp_path):
    seen = []
    manifest = create_pretraining_data([corpus_file], vocab, str(tmp_path), DataConfig(dupe_factor=3, num_shards=2),
                                       progress=seen.append)
    size = os.path.getsize(corpus_file)
    assert len(seen) > 6  # more often than once per shard
    assert all(p.bytes_total == size and p.shards_total == 2 for p in seen)
    for name in ("bytes_done", "documents", "instances", "shards_done"):
        values = [getattr(p, name) for p in seen]
        assert values == sorted(values), name
    last = seen[-1]
    assert (last.bytes_done, last.documents, last.instances, last.shards_done) == (
        size, manifest["documents"], manifest["num_instances"], 2)
    assert any(0 < p.bytes_done < size and p.shards_done == 0 for p in seen)  # within the first shard


def test_rerun_keeps_finished_shards_and_refuses_another_config(corpus_file, vocab, tmp_path, monkeypatch):
    out = str(tmp_path / "d")
    config = DataConfig(dupe_factor=1, num_shards=3)
    create_pretraining_data([corpus_file], vocab, out, config)
    before = _digest(out)
    # an interrupted run: no manifest yet, one shard never finished
    os.unlink(os.path.join(out, "manifest.json"))
    lost = list_shards(out)[1]
    os.unlink(lost)
    times = {f: os.stat(f).st_mtime_ns for f in list_shards(out)}
    manifest = create_pretraining_data([corpus_file], vocab, out, config)
    assert manifest["run"]["shards_made"] == 1 and manifest["run"]["shards_reused"] == 2
    assert _digest(out) == before
    assert all(os.stat(f).st_mtime_ns == t for f, t in times.items())
    with pytest.raises(DataError, match="another config"):
        create_pretraining_data([corpus_file], vocab, out, DataConfig(dupe_factor=2, num_shards=3))
    assert _digest(out) == before  # nothing was touched
    # An unfinished run of an older generator (other bytes for the same seed) is not mixed in either.
    import hvd_pretrain.data.create as create_module
    os.unlink(os.path.join(out, "manifest.json"))
    os.unlink(list_shards(out)[0])
    monkeypatch.setattr(create_module, "GENERATOR_VERSION", create_module.GENERATOR_VERSION + 1)
    with pytest.raises(DataError, match="unfinished run"):
        create_pretraining_data([corpus_file], vocab, out, config)
    assert len(list_shards(out)) == 2  # the finished shards are kept


def test_bad_input_is_skipped_and_counted(vocab, corpus_file, tmp_path):
    with open(corpus_file, "rb") as f:
        good = f.read(60_000)
    good = good[:good.rfind(b"\n\n") + 2]
    bad = (b"A fine sentence here.\n\xff\xfe broken bytes\n" + b"x" * 6000 + b"\nAnother fine line.\n\n"
           + b"\xc3\x28 only invalid\n\n")
    path = tmp_path / "mixed.txt"
    path.write_bytes(good + bad)
    manifest = create_pretraining_data([str(path)], vocab, str(tmp_path / "d"),
                                       DataConfig(dupe_factor=1, num_shards=1, max_line_bytes=5000))
    stats = manifest["input_stats"]
    assert max(len(line) for line in good.split(b"\n")) <= 5000
    assert stats["invalid_utf8_lines"] == 2 and stats["overlong_lines"] == 1 and stats["empty_documents"] == 1


@pytest.mark.parametrize("content, message", [
    (None, "input file not found"),
    (b"", "input file is empty"),
    (b"\n\n  \n", "input file is empty"),
    (b"\x00\x01\x02binary\x00" * 100, "not text"),
    (bytes(range(128, 256)) * 50, "not UTF-8 text"),
])
def test_missing_empty_or_binary_input_is_a_one_line_error(vocab, tmp_path, content, message):
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        create_pretraining_data([str(path)], vocab, str(tmp_path / "d"), DataConfig())
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)
    assert not os.path.exists(tmp_path / "d" / "manifest.json")


def test_bad_config_and_vocab_are_refused(corpus_file, vocab, tmp_path):
    with pytest.raises(DataError, match="--max_predictions_per_seq"):
        create_pretraining_data([corpus_file], vocab, str(tmp_path), DataConfig(max_predictions_per_seq=0))
    with pytest.raises(DataError, match="--sentence_objective"):
        create_pretraining_data([corpus_file], vocab, str(tmp_path), DataConfig(sentence_objective="xyz"))
    with pytest.raises(DataError, match="vocab not found"):
        create_pretraining_data([corpus_file], str(tmp_path / "novocab"), str(tmp_path), DataConfig())


def test_corrupt_shard_is_reported_with_its_name(nsp_data, tmp_path):
    out, manifest = nsp_data
    victim = tmp_path / os.path.basename(list_shards(out)[2])
    data = bytearray(open(list_shards(out)[2], "rb").read())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DataError) as info:
        verify_shards([str(victim)])
    assert str(victim) in str(info.value) and "corrupt TFRecord" in str(info.value)
    victim.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(DataError, match="truncated"):
        verify_shards([str(victim)])


def test_shards_for_rank_is_disjoint_covering_and_stable():
    files = ["d/part-%05d.tfrecord" % i for i in range(10)]
    for world in (1, 2, 3, 4, 7, 10):
        parts = [shards_for_rank(list(reversed(files)), r, world) for r in range(world)]
        flat = [f for p in parts for f in p]
        assert sorted(flat) == files and len(set(flat)) == len(files)
        assert parts == [shards_for_rank(files, r, world) for r in range(world)]
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(DataError, match="only 10 shard files for 11 ranks"):
        shards_for_rank(files, 0, 11)
    with pytest.raises(DataError):
        shards_for_rank(files, 2, 2)


def test_list_shards_finds_dirs_globs_and_errors(nsp_data, tmp_path):
    out, _ = nsp_data
    files = list_shards(out)
    assert files == sorted(files) and len(files) == 4
    assert list_shards(os.path.join(out, "*.tfrecord")) == files
    assert list_shards(",".join(reversed(files))) == files
    with pytest.raises(DataError, match="no TFRecord shards"):
        list_shards(str(tmp_path))
    with pytest.raises(DataError, match="not found"):
        list_shards(str(tmp_path / "nothing"))


def test_cli_create_and_inspect(corpus_file, vocab, tmp_path, capsys):
    from hvd_pretrain.cli import data_create, data_inspect

    out = tmp_path / "cli"
    code = data_create.main(["hvd-data create", "--input_files=" + corpus_file, "--vocab=" + vocab,
                             "--out=%s" % out, "--dupe_factor=1", "--num_shards=2", "--num_workers=1",
                             "--noprogress", "--whole_word_masking", "--ngram_max=2"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["whole_word_masking"] and manifest["config"]["ngram_max"] == 2
    assert data_inspect.main(["hvd-data inspect", "--data=%s" % out, "--num=2", "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "verified 2 shards" in printed and "[CLS]" in printed and "=>" in printed
    code = data_create.main(["hvd-data create", "--input_files=" + corpus_file, "--vocab=" + vocab,
                             "--out=%s" % (tmp_path / "x"), "--max_seq_length=4", "--noprogress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --max_seq_length=4") and "\n" not in err


def test_whole_word_masking_on_real_data(corpus_file, vocab, tmp_path):
    tok = load_tokenizer(vocab)
    create_pretraining_data([corpus_file], vocab, str(tmp_path),
                            DataConfig(dupe_factor=1, num_shards=1, whole_word_masking=True))
    multi = 0
    for rec in _records(str(tmp_path)):
        ids = np.array(rec["input_ids"])
        k = int(sum(rec["masked_lm_weights"]))
        positions = np.array(rec["masked_lm_positions"][:k])
        ids[positions] = rec["masked_lm_ids"][:k]  # the original sequence
        n = sum(rec["input_mask"])
        masked = set(positions.tolist())
        multi += masked_multitoken_words(ids, n, masked, tok)
    assert multi > 100
