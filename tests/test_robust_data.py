"""Degenerate inputs to hvd-data create: one document, one document per chunk, few documents,
chunks that give no instance. NSP's random-next segments come from other documents of the
whole input, labels stay balanced, and no run ends with 0 instances or an empty shard."""

import collections
import os
import random

import numpy as np
import pytest

from datatools import digest, records
from hvd_pretrain.data import DataConfig, DataError, create_pretraining_data, list_shards
from hvd_pretrain.data.instances import pair_instances
from hvd_pretrain.data.negatives import LabelStream, PairSources, join_documents
from hvd_pretrain.data.tfrecord import iter_records
from hvd_pretrain.data.token_documents import TokenDocuments

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _corpus(path, sentences_per_doc, words=6):
    """Documents whose words name them: document k only holds words d<k>w<j>."""
    docs = []
    for k, count in enumerate(sentences_per_doc):
        docs.append("\n".join(" ".join("d%dw%d" % (k, (s * words + j) % 40) for j in range(words))
                              for s in range(count)))
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return str(path)


def _vocab(path, num_docs):
    words = ["d%dw%d" % (k, j) for k in range(num_docs) for j in range(40)]
    path.write_text("\n".join(SPECIAL + words) + "\n", encoding="utf-8")
    return str(path), {i + len(SPECIAL): int(w[1:w.index("w")]) for i, w in enumerate(words)}


def _config(**kw):
    base = dict(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=10, masking="dynamic", seed=3)
    base.update(kw)
    return DataConfig(**base)


def _segments_docs(data_dir, doc_of):
    """Per record: (shard, label, documents of segment A, documents of segment B)."""
    out = []
    for shard in list_shards(data_dir):
        from hvd_pretrain.data.tfrecord import decode_example

        for raw in iter_records(shard):
            rec = decode_example(raw)
            ids, seg = rec["input_ids"], rec["segment_ids"]
            a = {doc_of[i] for i, s in zip(ids, seg) if s == 0 and i in doc_of}
            b = {doc_of[i] for i, s in zip(ids, seg) if s == 1 and i in doc_of}
            out.append((os.path.basename(shard), rec["next_sentence_labels"][0], a, b))
    return out


# ---------------------------------------------------------------------------------- label stream


def test_label_stream_is_balanced_within_one_whatever_is_skipped():
    rand = random.Random(0).random
    for trial in range(200):
        stream, counts = LabelStream(), [0, 0]
        feasibility = random.Random(trial)
        for _ in range(feasibility.randrange(1, 400)):
            label = stream.take(rand, zero_ok=feasibility.random() < 0.8, one_ok=feasibility.random() < 0.9)
            if label is not None:
                counts[label] += 1
        assert abs(counts[0] - counts[1]) <= 1, counts


def test_label_stream_puts_back_a_label_that_cannot_be_made():
    stream = LabelStream()
    assert stream.take(lambda: 0.1) == 1  # a block (1, 0)
    assert stream.take(lambda: 0.1, zero_ok=False) is None  # the 0 stays due
    assert stream.take(lambda: 0.1, zero_ok=False) is None
    assert stream.take(lambda: 0.1) == 0
    assert stream.take(lambda: 0.9, one_ok=False) == 0  # a block (0, 1)
    assert stream.take(lambda: 0.9) == 1


@pytest.mark.parametrize("objective", ["nsp", "sop"])
def test_every_pass_and_chunk_plans_exactly_half_of_each_label(objective):
    for seed in range(30):
        rng = np.random.default_rng(seed)
        docs = [[int(n) for n in rng.integers(1, 30, rng.integers(1, 6))] for _ in range(rng.integers(2, 9))]
        table = pair_instances(_token_documents(docs), 32, 0.1, objective, random.Random(seed), rng)
        assert len(table) < 2 or 2 * int(table.label.sum()) == len(table), (seed, table.label)


# ---------------------------------------------------------------------------------- planning with donors


def _token_documents(sentence_lengths_per_doc, start=0):
    lengths = [n for doc in sentence_lengths_per_doc for n in doc]
    sentence_bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(int).tolist()
    document_bounds = np.concatenate([[0], np.cumsum([len(d) for d in sentence_lengths_per_doc])]).astype(int).tolist()
    total = sentence_bounds[-1]
    tokens = np.append(np.arange(start, start + total, dtype=np.int32), np.int32(3))
    return TokenDocuments(tokens, np.ones(total + 1, dtype=bool), sentence_bounds, document_bounds, total)


def test_join_documents_keeps_both_sides_token_ranges():
    own, donors = _token_documents([[3, 4]]), _token_documents([[2], [5, 1]], start=1000)
    joined = join_documents(own, donors)
    assert joined.num_documents == 3 and joined.separator == 15 and joined.tokens[-1] == 3
    assert joined.sentence_bounds == [0, 3, 7, 9, 14, 15] and joined.document_bounds == [0, 2, 3, 5]
    assert joined.tokens[7:9].tolist() == [1000, 1001] and joined.tokens[9:15].tolist() == list(range(1002, 1008))


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_one_walked_document_takes_random_next_segments_from_donors_only(share):
    own = _token_documents([[12] * 30])
    donors = _token_documents([[10] * 4 for _ in range(5)], start=10_000)
    joined = join_documents(own, donors)
    sources = PairSources(num_own=1, local_share=share)
    table = pair_instances(joined, 64, 0.1, "nsp", random.Random(1), np.random.default_rng(1), sources)
    a_src = table.pieces[table.pieces[:, 1] == 1][:, 2]
    b_src = table.pieces[table.pieces[:, 1] != 1][:, 2]
    assert (a_src < own.separator).all()  # instances are made of the walked document only
    label = table.label
    assert label.sum() > 0 and abs(int(label.sum()) * 2 - len(label)) <= 1
    b_rows = table.pieces[table.pieces[:, 1] != 1][:, 0]
    assert (b_src[label[b_rows] == 1] >= own.separator).all()  # random next: from a donor
    assert (b_src[label[b_rows] == 0] < own.separator).all()


def test_local_share_splits_random_next_between_own_documents_and_donors():
    own = _token_documents([[12] * 8 for _ in range(20)])
    donors = _token_documents([[10] * 4 for _ in range(20)], start=100_000)
    joined = join_documents(own, donors)
    table = pair_instances(joined, 64, 0.0, "nsp", random.Random(2), np.random.default_rng(2),
                           PairSources(num_own=20, local_share=0.25))
    b = table.pieces[table.pieces[:, 1] != 1]
    random_next = table.label[b[:, 0]] == 1
    from_donors = (b[random_next, 2] >= own.separator).mean()
    assert 0.65 < from_donors < 0.85


# ---------------------------------------------------------------------------------- hvd-data create


def test_nsp_on_a_one_document_input_is_refused_naming_the_requirement(tmp_path):
    corpus = _corpus(tmp_path / "one.txt", [60])
    vocab, _ = _vocab(tmp_path / "vocab.txt", 1)
    with pytest.raises(DataError, match="nsp needs at least two documents.*one.txt.*sop"):
        create_pretraining_data([corpus], vocab, str(tmp_path / "out"), _config(num_shards=1))
    assert not [n for n in os.listdir(tmp_path / "out") if n.endswith(".tfrecord")]


def test_sop_on_a_one_document_input_gives_both_labels_balanced(tmp_path):
    corpus = _corpus(tmp_path / "one.txt", [60])
    vocab, _ = _vocab(tmp_path / "vocab.txt", 1)
    manifest = create_pretraining_data([corpus], vocab, str(tmp_path / "out"),
                                       _config(num_shards=1, sentence_objective="sop"))
    labels = manifest["sentence_labels"]
    assert labels["1"] > 0 and abs(labels["1"] / manifest["num_instances"] - 0.5) <= 0.02


@pytest.mark.parametrize("packing", [False, True])
def test_one_document_per_chunk_draws_random_next_from_the_other_chunks(tmp_path, packing):
    corpus = _corpus(tmp_path / "four.txt", [20, 20, 20, 20])
    vocab, doc_of = _vocab(tmp_path / "vocab.txt", 4)
    config = _config(num_shards=4, packing=packing)
    manifest = create_pretraining_data([corpus], vocab, str(tmp_path / "w1"), config, num_workers=1)
    assert manifest["num_shards"] == 4 and manifest["documents"] == 4
    rows = _segments_docs(str(tmp_path / "w1"), doc_of)
    donors_seen = collections.defaultdict(set)
    for shard, label, a, b in rows:
        assert len(a) == 1
        if label == 1:
            assert not (a & b), (shard, a, b)  # B never from A's document
            donors_seen[next(iter(a))] |= b
        elif not packing:
            assert b == a
    assert sorted(donors_seen) == [0, 1, 2, 3]
    assert all(len(seen) == 3 for seen in donors_seen.values())  # every other document of the input
    per_shard = collections.Counter((shard, label) for shard, label, _, _ in rows)
    assert all(per_shard[(s, 1)] > 0 and per_shard[(s, 0)] > 0 for s, _ in per_shard)
    labels = manifest["sentence_labels"]
    assert abs(labels["1"] / manifest["num_instances"] - 0.5) <= 0.02
    create_pretraining_data([corpus], vocab, str(tmp_path / "w2"), config, num_workers=2)
    assert digest(str(tmp_path / "w1")) == digest(str(tmp_path / "w2"))


@pytest.mark.parametrize("num_shards,dupe_factor", [(1, 1), (2, 3), (3, 10), (5, 2)])
def test_nsp_labels_stay_within_two_percent_on_few_documents(tmp_path, num_shards, dupe_factor):
    corpus = _corpus(tmp_path / "few.txt", [3, 12, 1, 7, 25])
    vocab, _ = _vocab(tmp_path / "vocab.txt", 5)
    config = _config(num_shards=num_shards, dupe_factor=dupe_factor, max_seq_length=32)
    one = create_pretraining_data([corpus], vocab, str(tmp_path / "w1"), config, num_workers=1)
    labels, total = one["sentence_labels"], one["num_instances"]
    assert labels["0"] + labels["1"] == total > 0
    lone = sum(s["instances"] == 1 for s in one["shards"])  # a shard's single instance is kept
    assert abs(labels["1"] - labels["0"]) <= lone, labels
    if total >= 50:
        assert abs(labels["1"] / total - 0.5) <= 0.02, labels
    assert one["sentence_label_1_rate"] == labels["1"] / total
    two = create_pretraining_data([corpus], vocab, str(tmp_path / "w2"), config, num_workers=2)
    assert digest(str(tmp_path / "w1")) == digest(str(tmp_path / "w2")) and one["shards"] == two["shards"]


def test_a_chunk_without_instances_leaves_no_empty_shard_and_a_note(tmp_path, capsys):
    from hvd_pretrain.cli import data

    # the second chunk is a one-token sentence: no SOP pair can be made of it
    corpus = tmp_path / "c.txt"
    corpus.write_text(" ".join("d0w%d" % (j % 40) for j in range(400)) + "\n" * 2 + "d1w0\n", encoding="utf-8")
    vocab, _ = _vocab(tmp_path / "vocab.txt", 2)
    out = tmp_path / "out"
    code = data.run(["hvd-data", "create", "--input_files=%s" % corpus, "--vocab=%s" % vocab, "--out=%s" % out,
                     "--sentence_objective=sop", "--num_shards=2", "--max_seq_length=32", "--noprogress"])
    captured = capsys.readouterr()
    assert code == 0
    on_disk = [n for n in os.listdir(out) if n.endswith(".tfrecord")]
    assert on_disk == ["part-00000-of-00002.tfrecord"]
    assert all(sum(1 for _ in iter_records(str(out / n))) > 0 for n in on_disk)
    notes = [line for line in captured.err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "part-00001-of-00002" in notes[0] and "1 shard" in notes[0]
    assert len(records(str(out))) > 0


def test_no_instance_at_all_is_exit_2_with_one_line(tmp_path, capsys):
    from hvd_pretrain.cli import data

    corpus = tmp_path / "c.txt"
    corpus.write_text("d0w1\n", encoding="utf-8")
    vocab, _ = _vocab(tmp_path / "vocab.txt", 1)
    code = data.run(["hvd-data", "create", "--input_files=%s" % corpus, "--vocab=%s" % vocab,
                     "--out=%s" % (tmp_path / "out"), "--sentence_objective=sop", "--noprogress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no training instance" in err[0] and "c.txt" in err[0]
    assert not [n for n in os.listdir(tmp_path / "out") if n.endswith(".tfrecord")]


def test_donor_chunks_are_sampled_from_the_whole_input(tmp_path):
    from hvd_pretrain.data.documents import iter_documents, plan_chunks
    from hvd_pretrain.data.negatives import DONOR_CHUNKS, donor_ranges, read_donors

    corpus = _corpus(tmp_path / "many.txt", [6] * 16)
    chunks = plan_chunks([corpus], 16)
    assert len(chunks) > DONOR_CHUNKS + 2

    def doc_ids(docs):
        return {int(doc[0].split()[0][1:].split("w")[0]) for doc in docs}

    reached = set()
    for index, chunk in enumerate(chunks):
        ranges = donor_ranges(chunks, index, seed=5)
        assert len(ranges) == len(chunks) - 1  # the sample, then every other chunk to fall back on
        assert all(start not in {s for _, s, _ in chunk} for _, start, _, _ in ranges[:DONOR_CHUNKS])
        docs = read_donors(ranges, 100_000)
        own = doc_ids(doc for path, start, end in chunk for doc in iter_documents(path, start, end))
        assert len(docs) >= DONOR_CHUNKS and not doc_ids(docs) & own
        assert donor_ranges(chunks, index, seed=5) == ranges  # fixed by (seed, chunk index)
        reached |= doc_ids(docs)
    assert len(reached) >= 14  # far chunks too, not only neighbours


WORKER_DIES = r'''
import os, signal, sys
from hvd_pretrain.data import DataConfig, DataError, create_pretraining_data, shard_writer
real = shard_writer.process_chunk

def dies_on_chunk_1(task):
    if task["index"] == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
    return real(task)

shard_writer.process_chunk = dies_on_chunk_1  # forked workers inherit it
corpus, vocab, out = sys.argv[1:4]
try:
    create_pretraining_data([corpus], vocab, out, DataConfig(dupe_factor=1, num_shards=4), num_workers=2)
except DataError as e:
    print("DataError:", e)
    sys.exit(2)
'''


@pytest.mark.timeout(200)
def test_a_worker_killed_mid_chunk_stops_creation_instead_of_hanging(corpus_file, vocab, tmp_path):
    import sys
    from proc import run
    result = run([sys.executable, "-c", WORKER_DIES, corpus_file, vocab, str(tmp_path / "out")], timeout=150,
                 check=False)
    assert result.returncode == 2, result.stdout[-2000:]
    assert "DataError: a data-creation worker died" in result.stdout and "--num_workers" in result.stdout
    assert not os.path.exists(tmp_path / "out" / "manifest.json")  # never a manifest over missing shards
