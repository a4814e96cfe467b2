"""Masked-LM masking in NumPy: 80/10/10, whole-word and n-gram spans.

One function, `mask_sequence`, serves both static masking (at data creation)
and dynamic masking (inside tf.data, through tf.numpy_function), so the two
follow exactly the same rules:

* Only candidate positions are masked: never [CLS], [SEP] or padding.
* The number of predictions is round(len(tokens) * masked_lm_prob), at least 1,
  at most max_predictions_per_seq (google-research/bert's rule).
* Whole-word masking groups a word-start token with the continuation tokens
  that follow it, and masks all of a word or none of it.
* N-gram masking picks spans of n consecutive words with p(n) ∝ 1/n,
  n = 1..ngram_max; a span that does not fit is shortened, and a word is never
  part of two spans.
* Each chosen token becomes [MASK] with mask_prob (0.8), a random non-special
  token with random_prob (0.1), and keeps its value otherwise.
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MaskingRule:
    mask_id: int
    random_ids: np.ndarray  # ids a random replacement draws from (no special symbols)
    max_predictions: int = 20
    masked_lm_prob: float = 0.15
    whole_word: bool = False
    ngram_max: int = 1
    mask_prob: float = 0.8
    random_prob: float = 0.1

    def __post_init__(self):
        self.random_ids = np.asarray(self.random_ids, dtype=np.int32)
        weights = 1.0 / np.arange(1, self.ngram_max + 1)
        self.ngram_probs = weights / weights.sum()


@dataclass
class MaskStats:
    instances: int = 0
    tokens: int = 0
    masked: int = 0
    replaced_mask: int = 0
    replaced_random: int = 0
    kept: int = 0
    span_lengths: dict = field(default_factory=dict)  # words per span -> count

    def add(self, other):
        for name in ("instances", "tokens", "masked", "replaced_mask", "replaced_random", "kept"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for length, count in other.span_lengths.items():
            key = int(length)
            self.span_lengths[key] = self.span_lengths.get(key, 0) + count
        return self

    def as_dict(self):
        masked = max(self.masked, 1)
        return {
            "instances": self.instances, "tokens": self.tokens, "masked_tokens": self.masked,
            "replaced_mask": self.replaced_mask, "replaced_random": self.replaced_random, "kept": self.kept,
            "mask_rate": self.replaced_mask / masked, "random_rate": self.replaced_random / masked,
            "kept_rate": self.kept / masked, "masked_fraction": self.masked / max(self.tokens, 1),
            "span_lengths": {str(k): v for k, v in sorted(self.span_lengths.items())},
        }

    @classmethod
    def from_dict(cls, values):
        stats = cls(instances=values["instances"], tokens=values["tokens"], masked=values["masked_tokens"],
                    replaced_mask=values["replaced_mask"], replaced_random=values["replaced_random"],
                    kept=values["kept"])
        stats.span_lengths = {int(k): v for k, v in values.get("span_lengths", {}).items()}
        return stats


def word_groups(candidates, word_starts, whole_word):
    """(candidate positions, group boundaries): group g is positions[bounds[g]:bounds[g+1]]."""
    positions = np.flatnonzero(candidates)
    if whole_word and positions.size:
        follows = np.empty(positions.size, dtype=bool)
        follows[0] = False
        follows[1:] = np.diff(positions) == 1
        starts = np.flatnonzero(~follows | word_starts[positions])
    else:
        starts = np.arange(positions.size)
    return positions, np.append(starts, positions.size)


def choose_positions(candidates, word_starts, num_to_predict, rng, rule, stats=None):
    """Sorted positions to predict, chosen word-group by word-group (or n-gram span by span)."""
    positions, bounds = word_groups(candidates, word_starts, rule.whole_word)
    if bounds.size == 1:
        return positions[:0]
    if rule.ngram_max > 1:
        picked = _choose_spans(positions, bounds, num_to_predict, rng, rule, stats)
    else:
        picked = _choose_words(positions, bounds, num_to_predict, rng, stats)
    if not picked:
        return positions[:0]
    return np.sort(np.concatenate(picked))


def _choose_words(positions, bounds, num_to_predict, rng, stats):
    """Words in random order, skipping any that would overshoot the budget (Google's rule)."""
    covered, picked = 0, []
    for g in rng.permutation(bounds.size - 1).tolist():
        if covered >= num_to_predict:
            break
        first, last = bounds[g], bounds[g + 1]
        if covered + last - first > num_to_predict:
            continue
        picked.append(positions[first:last])
        covered += last - first
    if stats is not None and picked:
        stats.span_lengths[1] = stats.span_lengths.get(1, 0) + len(picked)
    return picked


def _choose_spans(positions, bounds, num_to_predict, rng, rule, stats):
    """N-gram spans: draw n with p ∝ 1/n, then a uniformly random place where n free, adjacent words fit.

    Drawing the place among the spans that fit (rather than drawing a place and cutting the
    span short) keeps the achieved span lengths at 1/n; only when no n-span fits the rest of
    the budget is n lowered.
    """
    num_groups = bounds.size - 1
    sizes = np.diff(bounds)
    # adjacent[g]: word g+1 directly follows word g (no [SEP] between them)
    adjacent = positions[bounds[1:-1]] == positions[bounds[1:-1] - 1] + 1
    size_sum = np.concatenate([[0], np.cumsum(sizes)])
    broken_sum = np.concatenate([[0], np.cumsum(~adjacent)])
    # For each n: windows of n adjacent words that are still free, and their token counts.
    valid, window_size = {}, {}
    for n in range(1, min(rule.ngram_max, num_groups) + 1):
        g = np.arange(num_groups - n + 1)
        valid[n] = broken_sum[g + n - 1] == broken_sum[g]
        window_size[n] = size_sum[g + n] - size_sum[g]
    draws = rng.choice(rule.ngram_max, size=num_to_predict, p=rule.ngram_probs) + 1
    covered, picked = 0, []
    for n in draws.tolist():
        if covered >= num_to_predict:
            break
        n = min(n, num_groups)
        while n >= 1:
            starts = np.flatnonzero(valid[n] & (window_size[n] <= num_to_predict - covered))
            if starts.size:
                start = int(starts[rng.integers(starts.size)])
                for m, windows in valid.items():  # no later window may overlap this span
                    windows[max(0, start - m + 1):start + n] = False
                picked.append(positions[bounds[start]:bounds[start + n]])
                covered += int(window_size[n][start])
                if stats is not None:
                    stats.span_lengths[n] = stats.span_lengths.get(n, 0) + 1
                break
            n -= 1
        if n == 0:
            break
    return picked


def mask_sequence(ids, candidates, word_starts, num_tokens, rng, rule, stats=None):
    """Mask one sequence. Returns (masked ids, masked positions, original ids at those positions).

    ids: int array (padded); candidates: bool array, True where a token may be masked;
    word_starts: bool array (used for whole-word grouping); num_tokens: real tokens incl. [CLS]/[SEP].
    """
    num_to_predict = min(rule.max_predictions, max(1, int(round(num_tokens * rule.masked_lm_prob))))
    chosen = choose_positions(candidates, word_starts, num_to_predict, rng, rule, stats)
    labels = ids[chosen]
    out = ids.copy()
    draw = rng.random(chosen.size)
    to_mask = draw < rule.mask_prob
    to_random = (draw >= rule.mask_prob) & (draw < rule.mask_prob + rule.random_prob)
    out[chosen[to_mask]] = rule.mask_id
    num_random = int(to_random.sum())
    if num_random:
        out[chosen[to_random]] = rule.random_ids[rng.integers(0, rule.random_ids.size, num_random)]
    if stats is not None:
        stats.instances += 1
        stats.tokens += int(num_tokens)
        stats.masked += int(chosen.size)
        stats.replaced_mask += int(to_mask.sum())
        stats.replaced_random += num_random
        stats.kept += int(chosen.size) - int(to_mask.sum()) - num_random
    return out, chosen, labels


def mask_batch_tokens(ids, candidates, num_tokens, rng, rule, stats=None):
    """Vectorized masking of many sequences when every token is its own unit (no whole-word, no n-gram).

    Picks exactly min(budget, candidates) positions per row uniformly at random, which is
    what the per-sequence rule does for one-token groups. Returns (masked ids,
    positions [rows, max_predictions] padded with 0, labels, weights).
    """
    rows, width = ids.shape
    pred = rule.max_predictions
    budget = np.minimum(pred, np.maximum(1, np.round(num_tokens * rule.masked_lm_prob).astype(np.int64)))
    budget = np.minimum(budget, candidates.sum(axis=1))
    order = _random_candidate_order(candidates, pred, rng)
    valid = np.arange(pred)[None, :] < budget[:, None]
    positions = np.sort(np.where(valid, order, width), axis=1)  # chosen positions first, ascending
    valid = positions < width
    positions = np.where(valid, positions, 0)
    labels = np.where(valid, np.take_along_axis(ids, positions, axis=1), 0)
    draw = rng.random((rows, pred))
    to_mask = valid & (draw < rule.mask_prob)
    to_random = valid & (draw >= rule.mask_prob) & (draw < rule.mask_prob + rule.random_prob)
    out = ids.copy()
    r, c = np.nonzero(to_mask)
    out[r, positions[r, c]] = rule.mask_id
    r, c = np.nonzero(to_random)
    out[r, positions[r, c]] = rule.random_ids[rng.integers(0, rule.random_ids.size, r.size)]
    if stats is not None:
        masked = int(valid.sum())
        stats.instances += rows
        stats.tokens += int(num_tokens.sum())
        stats.masked += masked
        stats.replaced_mask += int(to_mask.sum())
        stats.replaced_random += int(to_random.sum())
        stats.kept += masked - int(to_mask.sum()) - int(to_random.sum())
        stats.span_lengths[1] = stats.span_lengths.get(1, 0) + masked
    return out, positions.astype(np.int32), labels.astype(np.int32), valid.astype(np.float32)


def _random_candidate_order(candidates, count, rng):
    """The first `count` columns of each row in a uniformly random order of its candidates first.

    Each column gets a random key with the column number in its low bits, so keys are unique,
    any sort gives the same order, and the column comes back from the sorted keys themselves
    (sorting values is much faster than argsort). Non-candidates get the largest key.
    """
    rows, width = candidates.shape
    bits = max(1, (width - 1).bit_length())
    key_type = np.uint32 if bits <= 12 else np.uint64
    random_bits = 8 * np.dtype(key_type).itemsize - 1 - bits  # the top bit stays 0 for candidates
    keys = rng.integers(0, 1 << random_bits, (rows, width), dtype=key_type)
    keys <<= bits
    keys |= np.arange(width, dtype=key_type)
    keys[~candidates] = np.iinfo(key_type).max
    first = np.sort(keys, axis=1)[:, :count]
    return (first & ((1 << bits) - 1)).astype(np.int64)
