"""--packing: single segments filled with consecutive documents, and packed NSP/SOP pairs of one label."""

import pytest

from datatools import digest as _digest
from datatools import masked_multitoken_words
from datatools import records as _records
from hvd_pretrain.data import DataConfig, DataError, create_pretraining_data, read_manifest
from hvd_pretrain.vocab import load_tokenizer


def test_packing_fills_sequences_with_whole_documents(corpus_file, vocab, tmp_path):
    tok = load_tokenizer(vocab)
    plain = create_pretraining_data([corpus_file], vocab, str(tmp_path / "plain"),
                                    DataConfig(dupe_factor=1, num_shards=1, sentence_objective="none"))
    packed = create_pretraining_data([corpus_file], vocab, str(tmp_path / "packed"),
                                     DataConfig(dupe_factor=1, num_shards=1, sentence_objective="none", packing=True))
    assert packed["masking_stats"]["tokens"] / packed["num_instances"] > 105  # of 128: whole sentences only
    assert plain["masking_stats"]["tokens"] / plain["num_instances"] < 100
    assert packed["num_instances"] < 0.7 * plain["num_instances"]
    inner_separators = 0
    for rec in _records(str(tmp_path / "packed")):
        n = sum(rec["input_mask"])
        k = int(sum(rec["masked_lm_weights"]))
        ids = list(rec["input_ids"])
        for pos, orig in zip(rec["masked_lm_positions"][:k], rec["masked_lm_ids"][:k]):
            assert orig not in (tok.sep_id, tok.cls_id, tok.pad_id)
            ids[pos] = orig
        inner_separators += ids[1:n - 1].count(tok.sep_id)
        assert ids[n - 1] == tok.sep_id and not any(a == b == tok.sep_id for a, b in zip(ids[:n - 1], ids[1:n]))
        assert set(rec["segment_ids"]) == {0} and rec["next_sentence_labels"] == [0]
    assert inner_separators > packed["num_instances"]  # most sequences hold several documents
    assert packed["sequence_stats"]["pairs"] == 0 and packed["sequence_stats"]["fill"] > 105 / 128
    # packing now serves the pair objectives too (it used to be refused); other checks still apply
    assert DataConfig(packing=True).validate().sentence_objective == "nsp"
    assert DataConfig(packing=True, sentence_objective="sop").validate().packing
    with pytest.raises(DataError, match="--sentence_objective=xyz"):
        DataConfig(packing=True, sentence_objective="xyz").validate()


def _original_ids(rec):
    """input_ids with the masked positions given back their original tokens."""
    ids = list(rec["input_ids"])
    k = int(sum(rec["masked_lm_weights"]))
    for pos, orig in zip(rec["masked_lm_positions"][:k], rec["masked_lm_ids"][:k]):
        ids[pos] = orig
    return ids


def _segment_layout(ids, n, sep_id):
    """(segment ids a [CLS] A1 [SEP] B1 [SEP] A2 [SEP] ... [SEP] sequence must have, first column of each segment)."""
    expected, starts, segment = [0], [1], 0
    for pos in range(1, n):
        expected.append(segment % 2)
        if ids[pos] == sep_id:
            segment += 1
            starts.append(pos + 1)
    return expected, starts[:-1]


@pytest.mark.parametrize("objective", ["sop", "nsp"])
def test_packed_pairs_in_records(corpus_file, vocab, tmp_path, objective):
    tok = load_tokenizer(vocab)
    plain = create_pretraining_data([corpus_file], vocab, str(tmp_path / "plain"),
                                    DataConfig(dupe_factor=2, num_shards=2, sentence_objective=objective))
    packed = create_pretraining_data([corpus_file], vocab, str(tmp_path / "packed"),
                                     DataConfig(dupe_factor=2, num_shards=2, sentence_objective=objective, packing=True,
                                                whole_word_masking=True))
    stats, plain_stats = packed["sequence_stats"], plain["sequence_stats"]
    assert stats["pairs"] == plain_stats["pairs"] == plain["num_instances"]  # the same pairs, fewer sequences
    assert stats["pairs_per_sequence"] > 1.2 and plain_stats["pairs_per_sequence"] == 1.0
    # Real tokens per sequence, packed / plain, over seeds 1, 2, 3 and 12345: NSP 1.30-1.34, SOP 1.45-1.48.
    assert stats["tokens_per_sequence"] > 1.25 * plain_stats["tokens_per_sequence"]
    assert abs(packed["sentence_label_1_rate"] - 0.5) < 0.02
    records = _records(str(tmp_path / "packed"))
    assert len(records) == packed["num_instances"]
    assert sum(sum(r["input_mask"]) for r in records) == stats["real_tokens"]
    multi_token_words = 0
    for rec in records:
        n = sum(rec["input_mask"])
        ids = _original_ids(rec)
        assert ids[0] == tok.cls_id and ids[n - 1] == tok.sep_id and all(i == tok.pad_id for i in ids[n:])
        num_seps = ids[:n].count(tok.sep_id)
        assert num_seps >= 2 and num_seps % 2 == 0  # whole pairs: A [SEP] B [SEP] each
        expected, segment_starts = _segment_layout(ids, n, tok.sep_id)
        assert rec["segment_ids"] == expected + [0] * (128 - n)  # 0 on each A and its [SEP], 1 on each B and its [SEP]
        k = int(sum(rec["masked_lm_weights"]))
        masked = set(rec["masked_lm_positions"][:k])
        assert k >= 1 and all(0 < p < n and ids[p] not in (tok.cls_id, tok.sep_id, tok.pad_id) for p in masked)
        # whole words, each masked entirely or not at all; a word ends at every [SEP]
        multi_token_words += masked_multitoken_words(ids, n, masked, tok, segment_starts)
    assert multi_token_words > 100


@pytest.mark.parametrize("objective", ["nsp", "sop"])
def test_packed_pairs_are_the_same_for_one_or_two_workers(corpus_file, vocab, tmp_path, objective):
    config = DataConfig(dupe_factor=2, num_shards=3, seed=11, sentence_objective=objective, packing=True)
    one = create_pretraining_data([corpus_file], vocab, str(tmp_path / "w1"), config, num_workers=1)
    two = create_pretraining_data([corpus_file], vocab, str(tmp_path / "w2"), config, num_workers=2)
    assert _digest(str(tmp_path / "w1")) == _digest(str(tmp_path / "w2")) and len(_digest(str(tmp_path / "w1"))) == 3
    assert one["sequence_stats"] == two["sequence_stats"] and two["run"]["num_workers"] == 2


def test_cli_packs_pairs_with_dynamic_masking_word_starts(corpus_file, vocab, tmp_path, capsys):
    """hvd-data create --packing --sentence_objective=nsp --masking=dynamic: every segment starts a word."""
    from hvd_pretrain.cli import data_create

    tok = load_tokenizer(vocab)
    out = tmp_path / "cli"
    code = data_create.main(["hvd-data create", "--input_files=" + corpus_file, "--vocab=" + vocab, "--out=%s" % out,
                             "--dupe_factor=1", "--num_shards=1", "--num_workers=1", "--noprogress", "--packing",
                             "--sentence_objective=nsp", "--masking=dynamic", "--whole_word_masking"])
    assert code == 0 and '"pairs_per_sequence"' in capsys.readouterr().out
    manifest = read_manifest(str(out))
    assert manifest["config"]["packing"] and manifest["sequence_stats"]["pairs_per_sequence"] > 1.2
    for rec in _records(str(out)):
        n = sum(rec["input_mask"])
        ids, starts = rec["input_ids"], rec["word_starts"]
        expected, segment_starts = _segment_layout(ids, n, tok.sep_id)
        assert rec["segment_ids"][:n] == expected
        never = [p for p in range(128) if p == 0 or p >= n or ids[p] == tok.sep_id]
        assert all(starts[p] == 0 for p in never) and all(starts[p] == 1 for p in segment_starts)
        assert all(starts[p] in (1, 2) for p in range(1, n) if p not in never)
