"""hvd-data create --eval_fraction / --eval_documents: the held-out split. No TensorFlow here."""

import glob
import os

import pytest

from datatools import digest as _digest
from datatools import records as _records
from hvd_pretrain.data import DataConfig, DataError, create_pretraining_data, read_manifest
from hvd_pretrain.data.documents import read_documents
from hvd_pretrain.data.eval_split import document_id
from hvd_pretrain.vocab import load_tokenizer

WINDOW = 10  # tokens: a run this long shared by two sentences is a copy, not chance


@pytest.fixture(scope="module")
def split_data(corpus_file, vocab, tmp_path_factory):
    """Training shards unmasked (dynamic masking) so their token ids can be searched; 10% held out."""
    out = str(tmp_path_factory.mktemp("split"))
    config = DataConfig(dupe_factor=2, num_shards=4, masking="dynamic", eval_fraction=0.1, seed=11)
    return out, create_pretraining_data([corpus_file], vocab, out, config, num_workers=2)


def _windows(ids):
    return {tuple(ids[i:i + WINDOW]) for i in range(len(ids) - WINDOW + 1)}


def test_no_held_out_sentence_reaches_training(split_data, corpus_file, vocab):
    out, manifest = split_data
    tok = load_tokenizer(vocab)
    held = [doc for path in sorted(glob.glob(os.path.join(out, "eval", "documents", "*.txt")))
            for doc in read_documents([path])]
    held_ids = {document_id(11, doc) for doc in held}
    everything = list(read_documents([corpus_file]))
    train_docs = [doc for doc in everything if document_id(11, doc) not in held_ids]
    assert len(held) == manifest["eval"]["documents"] and len(held) + len(train_docs) == len(everything)
    assert 0.05 < len(held) / len(everything) < 0.15
    # Runs of text that also occur in a training document (docstrings repeat phrases) cannot tell a leak
    # from the corpus: they are left out of the search.
    train_sentences = {s for doc in train_docs for s in doc}
    shared = set()
    for sentence in train_sentences:
        shared |= _windows(tok.encode(sentence))
    in_training = set()
    for record in _records(out):
        ids = [i for i in record["input_ids"] if i not in (tok.cls_id, tok.sep_id, tok.pad_id)]
        in_training |= _windows(ids)

    def found(sentences, exclude=frozenset()):
        hits = total = 0
        for sentence in sentences:
            windows = _windows(tok.encode(sentence)) - exclude
            if windows:
                total += 1
                hits += bool(windows & in_training)
        return hits, total

    leaked, checked = found({s for doc in held for s in doc}, exclude=shared)
    assert checked > 100 and leaked == 0
    # The same search finds the training sentences (it would find a leak).
    seen, trained = found(list(train_sentences)[:400])
    assert seen > 0.9 * trained


def test_eval_shards_are_static_and_the_manifest_records_the_split(split_data):
    out, manifest = split_data
    held = manifest["eval"]
    assert held["documents"] > 0 and len(held["document_ids_sha256"]) == 64 and held["masking"] == "static"
    eval_manifest = read_manifest(os.path.join(out, "eval"))
    assert eval_manifest["config"]["masking"] == "static" and eval_manifest["config"]["dupe_factor"] == 1
    assert eval_manifest["num_instances"] == held["num_instances"] > 0
    record = _records(os.path.join(out, "eval"))[0]
    assert "masked_lm_positions" in record and "word_starts" not in record
    assert "word_starts" in _records(out)[0]  # training stays dynamic
    assert manifest["documents"] + held["documents"] == manifest["input_stats"]["documents"]


def test_split_depends_on_text_and_seed_not_on_workers_or_shards(corpus_file, vocab, tmp_path, split_data):
    _, reference = split_data
    config = DataConfig(dupe_factor=1, num_shards=3, masking="dynamic", eval_fraction=0.1, seed=11)
    one = create_pretraining_data([corpus_file], vocab, str(tmp_path / "a"), config, num_workers=1)
    assert one["eval"]["document_ids_sha256"] == reference["eval"]["document_ids_sha256"]
    two = create_pretraining_data([corpus_file], vocab, str(tmp_path / "b"), config, num_workers=2)
    assert _digest(str(tmp_path / "a" / "eval")) == _digest(str(tmp_path / "b" / "eval"))
    assert _digest(str(tmp_path / "a")) == _digest(str(tmp_path / "b"))
    other = create_pretraining_data([corpus_file], vocab, str(tmp_path / "c"), config.replace(seed=12))
    assert other["eval"]["document_ids_sha256"] != one["eval"]["document_ids_sha256"]


def test_eval_documents_holds_out_exactly_n(corpus_file, vocab, tmp_path):
    config = DataConfig(dupe_factor=1, num_shards=2, eval_documents=25, sentence_objective="sop")
    manifest = create_pretraining_data([corpus_file], vocab, str(tmp_path / "n"), config)
    distinct = {document_id(config.seed, doc) for doc in read_documents([corpus_file])}
    assert manifest["eval"]["documents"] >= 25  # duplicated documents go with their twin
    assert manifest["eval"]["documents"] - 25 <= sum(1 for _ in read_documents([corpus_file])) - len(distinct)


def test_bad_split_options_are_one_line_errors(corpus_file, vocab, tmp_path):
    with pytest.raises(DataError, match="both set"):
        DataConfig(eval_fraction=0.1, eval_documents=3).validate()
    with pytest.raises(DataError, match="eval_fraction"):
        DataConfig(eval_fraction=1.0).validate()
    with pytest.raises(DataError, match="holds out every document"):
        create_pretraining_data([corpus_file], vocab, str(tmp_path / "all"),
                                DataConfig(dupe_factor=1, num_shards=2, eval_documents=10 ** 6))


def test_fingerprint_of_data_without_a_split_is_unchanged():
    assert DataConfig().fingerprint() == DataConfig(eval_fraction=0.0, eval_documents=0).fingerprint()
    assert DataConfig().fingerprint() != DataConfig(eval_fraction=0.01).fingerprint()
