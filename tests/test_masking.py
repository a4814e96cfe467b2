"""Masking rules at the NumPy level: 80/10/10, never on specials, budget, whole words, n-gram spans."""

import numpy as np

from hvd_pretrain.data.instances import InstanceTable, truncated_lengths
from hvd_pretrain.data.masking import MaskingRule, MaskStats, mask_sequence, word_groups
from hvd_pretrain.data.sequences import assemble
from hvd_pretrain.data.token_documents import TokenDocuments

PAD, CLS, SEP, MASK = 0, 2, 3, 4
VOCAB = 1000


def _random_pairs(rng, num, max_seq_length=128):
    """(tokens, word starts, a_start, a_len, b_len, Sequences) of random A/B pairs, B right after A."""
    a_len = rng.integers(1, 70, num)
    b_len = rng.integers(1, max_seq_length - 3 - a_len + 1)
    total = a_len + b_len
    tokens = rng.integers(5, VOCAB, int(total.sum())).astype(np.int32)
    starts = rng.random(tokens.size) < 0.6
    a_start = np.cumsum(total) - total
    documents = TokenDocuments(np.append(tokens, np.int32(SEP)), np.append(starts, True), [0, tokens.size], [0, 1],
                               tokens.size)
    table = InstanceTable.from_ranges(a_start, a_len, a_start + a_len, b_len, np.zeros(num, dtype=np.int64))
    return tokens, starts, a_start, a_len, b_len, assemble(table, documents, max_seq_length, CLS, SEP, PAD)


def _masked_many(rule, num, seed=0, max_seq_length=128):
    rng = np.random.default_rng(seed)
    stats = MaskStats()
    out = []
    seq = _random_pairs(rng, num, max_seq_length)[-1]
    for row in range(num):
        ids, candidates, starts, n = (seq.input_ids[row], seq.candidates[row], seq.word_starts[row],
                                      int(seq.num_tokens[row]))
        masked, positions, labels = mask_sequence(ids, candidates, starts, n, rng, rule, stats)
        out.append((ids, candidates, starts, n, masked, positions, labels))
    return out, stats


def test_80_10_10_within_one_percent_on_100k_masked_tokens():
    rule = MaskingRule(mask_id=MASK, random_ids=np.arange(5, VOCAB), max_predictions=20)
    results, stats = _masked_many(rule, 8500)
    assert stats.masked >= 100_000
    mask = rand = kept = 0
    for ids, _, _, _, masked, positions, labels in results:
        assert np.array_equal(labels, ids[positions])
        now = masked[positions]
        mask += int((now == MASK).sum())
        kept += int((now == labels).sum())
        rand += int(((now != MASK) & (now != labels)).sum())
    total = mask + rand + kept
    assert total == stats.masked
    # measured from the outputs; a random draw that hits the original token counts as kept (p = 1/995)
    assert abs(mask / total - 0.8) < 0.01
    assert abs(rand / total - 0.1) < 0.01
    assert abs(kept / total - 0.1) < 0.01
    assert abs(stats.replaced_mask / total - 0.8) < 0.01  # the manifest's own counts agree
    assert stats.replaced_mask == mask


def test_never_masks_cls_sep_or_padding_and_respects_the_budget():
    rule = MaskingRule(mask_id=MASK, random_ids=np.arange(5, VOCAB), max_predictions=20, masked_lm_prob=0.15)
    results, _ = _masked_many(rule, 2000, seed=1)
    for ids, candidates, _, n, masked, positions, _ in results:
        assert positions.size == min(20, max(1, round(n * 0.15)))
        assert np.all(candidates[positions])
        assert not np.isin(ids[positions], [PAD, CLS, SEP]).any()
        assert np.all(positions < n)
        assert np.array_equal(masked[~np.isin(np.arange(ids.size), positions)],
                              ids[~np.isin(np.arange(ids.size), positions)])
        assert np.all(np.diff(positions) > 0)


def test_random_replacements_are_never_special():
    rule = MaskingRule(mask_id=MASK, random_ids=np.arange(5, VOCAB), mask_prob=0.0, random_prob=1.0)
    results, _ = _masked_many(rule, 300, seed=2)
    for _, _, _, _, masked, positions, _ in results:
        assert np.all(masked[positions] >= 5)


def test_whole_word_masking_never_masks_part_of_a_word():
    rule = MaskingRule(mask_id=MASK, random_ids=np.arange(5, VOCAB), max_predictions=20, whole_word=True)
    results, _ = _masked_many(rule, 2000, seed=3)
    partial_words_seen = 0
    for ids, candidates, starts, _, _, positions, _ in results:
        cand_positions, bounds = word_groups(candidates, starts, True)
        chosen = set(positions.tolist())
        for g in range(bounds.size - 1):
            word = cand_positions[bounds[g]:bounds[g + 1]].tolist()
            hits = sum(p in chosen for p in word)
            assert hits in (0, len(word)), "word %s partly masked" % word
            partial_words_seen += len(word) > 1 and hits == len(word)
    assert partial_words_seen > 1000  # multi-token words were really masked


def test_word_groups_do_not_cross_separators():
    candidates = np.array([0, 1, 1, 1, 0, 1, 1, 0], dtype=bool)
    starts = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    positions, bounds = word_groups(candidates, starts, True)
    groups = [positions[bounds[g]:bounds[g + 1]].tolist() for g in range(bounds.size - 1)]
    assert groups == [[1, 2, 3], [5, 6]]


def test_ngram_span_lengths_follow_one_over_n():
    rule = MaskingRule(mask_id=MASK, random_ids=np.arange(5, VOCAB), max_predictions=80, ngram_max=3)
    _, stats = _masked_many(rule, 600, seed=4, max_seq_length=512)
    counts = np.array([stats.span_lengths.get(n, 0) for n in (1, 2, 3)], dtype=float)
    assert counts.sum() > 10_000
    expected = np.array([1, 1 / 2, 1 / 3]) / (1 + 1 / 2 + 1 / 3)
    assert np.all(np.abs(counts / counts.sum() - expected) < 0.03), counts / counts.sum()
    assert abs(stats.masked / stats.tokens - 0.15) < 0.01


def test_ngram_composes_with_whole_words():
    rule = MaskingRule(mask_id=MASK, random_ids=np.arange(5, VOCAB), max_predictions=20, whole_word=True,
                       ngram_max=3)
    results, stats = _masked_many(rule, 500, seed=5)
    assert stats.span_lengths.get(3, 0) > 0
    for _, candidates, starts, _, _, positions, _ in results:
        cand_positions, bounds = word_groups(candidates, starts, True)
        chosen = set(positions.tolist())
        for g in range(bounds.size - 1):
            word = cand_positions[bounds[g]:bounds[g + 1]].tolist()
            assert sum(p in chosen for p in word) in (0, len(word))


def test_truncation_trims_the_longer_side_first():
    def loop_rule(la, lb, limit):  # trim one token at a time from the longer side (b on ties)
        while la + lb > limit:
            if la > lb:
                la -= 1
            else:
                lb -= 1
        return la, lb

    la, lb = np.meshgrid(np.arange(1, 140, 3), np.arange(1, 140, 7))
    new_a, new_b = truncated_lengths(la.ravel(), lb.ravel(), 125)
    assert [(a, b) for a, b in zip(new_a.tolist(), new_b.tolist())] == [
        loop_rule(a, b, 125) for a, b in zip(la.ravel().tolist(), lb.ravel().tolist())]


def test_sequences_have_the_pair_layout():
    rng = np.random.default_rng(7)
    tokens, starts, a_start, a_len, b_len, seq = _random_pairs(rng, 300)
    for row in range(300):
        a = tokens[a_start[row]:a_start[row] + a_len[row]].tolist()
        b = tokens[a_start[row] + a_len[row]:a_start[row] + a_len[row] + b_len[row]].tolist()
        n = len(a) + len(b) + 3
        assert seq.num_tokens[row] == n
        assert seq.input_ids[row].tolist() == [CLS] + a + [SEP] + b + [SEP] + [PAD] * (128 - n)
        assert seq.input_mask[row].tolist() == [1] * n + [0] * (128 - n)
        assert seq.segment_ids[row].tolist() == [0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * (128 - n)
        assert np.flatnonzero(seq.candidates[row]).tolist() == (list(range(1, len(a) + 1))
                                                                + list(range(len(a) + 2, n - 1)))
        a_starts = starts[a_start[row]:a_start[row] + a_len[row]].copy()
        b_starts = starts[a_start[row] + a_len[row]:a_start[row] + a_len[row] + b_len[row]].copy()
        a_starts[0] = b_starts[0] = True  # a segment always starts a word
        assert seq.word_starts[row, 1:len(a) + 1].tolist() == a_starts.tolist()
        assert seq.word_starts[row, len(a) + 2:n - 1].tolist() == b_starts.tolist()


def test_batched_token_masking_matches_the_rules_on_100k_tokens():
    from hvd_pretrain.data.masking import mask_batch_tokens

    rng = np.random.default_rng(6)
    seq = _random_pairs(rng, 8500)[-1]
    ids, candidates, n = seq.input_ids, seq.candidates, seq.num_tokens
    rule = MaskingRule(mask_id=MASK, random_ids=np.arange(5, VOCAB), max_predictions=20)
    stats = MaskStats()
    masked, positions, labels, weights = mask_batch_tokens(ids, candidates, n, rng, rule, stats)
    valid = weights > 0
    assert valid.sum() == stats.masked >= 100_000
    assert np.array_equal(valid.sum(axis=1), np.minimum(20, np.maximum(1, np.round(n * 0.15))))
    rows = np.nonzero(valid)[0]
    cols = positions[valid]
    assert np.all(candidates[rows, cols]) and not np.isin(ids[rows, cols], [PAD, CLS, SEP]).any()
    assert np.all(np.diff(positions, axis=1)[valid[:, 1:]] > 0)  # ascending, no repeats
    assert np.array_equal(labels[valid], ids[rows, cols])
    now = masked[rows, cols]
    total = now.size
    assert abs((now == MASK).sum() / total - 0.8) < 0.01
    assert abs(((now != MASK) & (now != labels[valid])).sum() / total - 0.1) < 0.01
    assert abs((now == labels[valid]).sum() / total - 0.1) < 0.01
    untouched = np.ones_like(ids, dtype=bool)
    untouched[rows, cols] = False
    assert np.array_equal(masked[untouched], ids[untouched])
    assert np.all(positions[~valid] == 0) and np.all(labels[~valid] == 0)
    # every candidate of a row is equally likely: check the first and the last one against budget / candidates
    chance = valid.sum(axis=1) / candidates.sum(axis=1)
    last = n - 2
    chosen_first = (positions == 1).any(axis=1)
    chosen_last = (valid & (positions == last[:, None])).any(axis=1)
    for chosen in (chosen_first, chosen_last):
        assert abs(chosen.sum() / chance.sum() - 1) < 0.08
