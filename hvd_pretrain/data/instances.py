"""Documents -> sentence-pair training instances (NSP, SOP) or single-segment ones (none).

The procedure follows google-research/bert: sentences are gathered up to a
target length (shorter with short_seq_prob), split at a random sentence into
segment A and B, and the pair is truncated to fit, trimming the longer side,
each removed token coming from the front or the back with equal chance.

Labels (next_sentence_labels, as in Google's records):
  nsp:  1 = B is a random segment from another document, 0 = B really follows A.
  sop:  1 = A and B are swapped, 0 = in order (ALBERT's sentence order).
  none: a single segment, label 0.
Every instance gets its label from a stream that gives one of each label per
two instances (negatives.LabelStream; an unfinished block is dropped at the end
of the last pass), so labels are exactly balanced even when a group holds a
single sentence (then that sentence is cut at a random token) and on a small
input. The random document of NSP may be a donor from another chunk of the
input (negatives.PairSources). The sentence loops are in sentence_plan.py.

Packing fills each sequence with more text. With no pair objective it packs
whole sentences of consecutive documents (`packed_instances`). With NSP or SOP
it packs whole pairs of the same label (`packed_pair_instances`):
[CLS] A1 [SEP] B1 [SEP] A2 [SEP] B2 [SEP] ..., so the one label of the
sequence is true for every pair in it.

Instances are token ranges of a `TokenDocuments` (runs of consecutive
sentences are contiguous there), so planning one costs a few integer
operations: the walk over a document's sentences is a Python loop over
integers with `bisect`, and truncation, shuffling and batching are NumPy
operations on all instances at once. The result is an `InstanceTable`.
"""

import random
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from hvd_pretrain.data.sentence_plan import plan_pairs as _plan_pairs
from hvd_pretrain.data.sentence_plan import plan_singles as _plan_singles

# Columns of InstanceTable.pieces: instance row, first column in the sequence, first token, token count.
ROW, COLUMN, SOURCE, LENGTH = range(4)
# Columns of InstanceTable.b_spans: instance row (ROW), first column (COLUMN), column count.
SPAN_LENGTH = 2


def _no_spans():
    return np.zeros((0, 3), dtype=np.int64)


@dataclass
class InstanceTable:
    """Instances as token ranges. Row r's sequence is [CLS] A [SEP] (B [SEP] if b_len[r] > 0).

    A and B are made of `pieces`: token ranges of the documents copied to a column of the
    row's sequence (A starts at column 1, B at column a_len + 2). Most segments are one
    piece; a packed sequence has one per run of sentences and one per separator.

    A row of packed pairs is a single "A" region holding A1 [SEP] B1 [SEP] A2 ... B_n (the
    [SEP] pieces come from `TokenDocuments.separator`; the last [SEP] is the row's own).
    `b_spans` marks the columns of each B_i and the [SEP] after it, which get segment id 1;
    every span start, and the column after a span, starts a segment (and a word).
    """

    a_len: np.ndarray  # [rows] int64
    b_len: np.ndarray  # [rows] int64
    label: np.ndarray  # [rows] int64
    pieces: np.ndarray  # [num_pieces, 4] int64: ROW, COLUMN, SOURCE, LENGTH; sorted by row
    b_spans: np.ndarray = field(default_factory=_no_spans)  # [num_spans, 3] int64: ROW, COLUMN, SPAN_LENGTH; by row

    def __len__(self):
        return self.a_len.size

    @property
    def num_tokens(self):
        """[rows] real tokens of each sequence, [CLS] and [SEP]s included."""
        return self.a_len + self.b_len + np.where(self.b_len > 0, 3, 2)

    @property
    def num_pairs(self):
        """Sentence pairs held by all rows: one per row with a B segment, one per packed B span."""
        return int(np.count_nonzero(self.b_len)) + len(self.b_spans)

    def shuffled(self, rng):
        """The same instances in a random order (rows renumbered, pieces and spans re-sorted by row)."""
        order = rng.permutation(len(self))
        new_row = np.empty_like(order)
        new_row[order] = np.arange(order.size)
        return InstanceTable(self.a_len[order], self.b_len[order], self.label[order],
                             _renumbered(self.pieces, new_row), _renumbered(self.b_spans, new_row))

    def batches(self, size):
        """Consecutive sub-tables of at most `size` rows, each with rows numbered from 0."""
        firsts = np.arange(0, len(self) + size, size)
        bounds = np.searchsorted(self.pieces[:, ROW], firsts)
        span_bounds = np.searchsorted(self.b_spans[:, ROW], firsts)
        for k, first in enumerate(range(0, len(self), size)):
            pieces = self.pieces[bounds[k]:bounds[k + 1]].copy()
            pieces[:, ROW] -= first
            spans = self.b_spans[span_bounds[k]:span_bounds[k + 1]].copy()
            spans[:, ROW] -= first
            last = first + size
            yield InstanceTable(self.a_len[first:last], self.b_len[first:last], self.label[first:last], pieces,
                                spans)

    @classmethod
    def from_ranges(cls, a_start, a_len, b_start, b_len, label):
        """One piece per segment: A is tokens a_start .. a_start+a_len-1, B likewise (b_len 0: no B)."""
        rows = np.arange(a_len.size)
        a_pieces = np.stack([rows, np.ones_like(rows), a_start, a_len], axis=1)
        b_pieces = np.stack([rows, a_len + 2, b_start, b_len], axis=1)
        pieces = np.stack([a_pieces, b_pieces], axis=1).reshape(-1, 4)
        return cls(a_len, b_len, label, pieces[pieces[:, LENGTH] > 0])

    @classmethod
    def concatenate(cls, tables):
        tables = [t for t in tables if len(t)]
        if not tables:
            return empty_table()
        offsets = np.cumsum([0] + [len(t) for t in tables[:-1]]).tolist()

        def shifted(name):
            parts = []
            for table, offset in zip(tables, offsets):
                part = getattr(table, name).copy()
                part[:, ROW] += offset
                parts.append(part)
            return np.concatenate(parts)

        return cls(*(np.concatenate([getattr(t, name) for t in tables]) for name in ("a_len", "b_len", "label")),
                   shifted("pieces"), shifted("b_spans"))


def _renumbered(rows_first, new_row):
    """An array whose first column is a row number, rows renumbered by new_row and re-sorted (stably)."""
    out = rows_first.copy()
    out[:, ROW] = new_row[out[:, ROW]]
    return out[np.argsort(out[:, ROW], kind="stable")]


def empty_table():
    none = np.zeros(0, dtype=np.int64)
    return InstanceTable(none, none, none, np.zeros((0, 4), dtype=np.int64))


def python_random(seed_sequence):
    """A `random.Random` for the per-document walk, seeded from a NumPy SeedSequence."""
    return random.Random(int(seed_sequence.generate_state(2, dtype=np.uint64)[0]))


def pair_instances(documents, max_seq_length, short_seq_prob, objective, rand, rng, sources=None):
    """One pass over every document: NSP or SOP pairs, truncated. rand: random.Random; rng: NumPy Generator;
    sources: a negatives.PairSources (default: every document walked, labels balanced within this pass)."""
    return InstanceTable.from_ranges(*pair_ranges(documents, max_seq_length, short_seq_prob, objective, rand, rng,
                                                  sources))


def pair_ranges(documents, max_seq_length, short_seq_prob, objective, rand, rng, sources=None):
    """The pairs of `pair_instances` as arrays: a_start, a_len, b_start, b_len, label (truncated to fit)."""
    max_tokens = max_seq_length - 3
    rows = np.array(_plan_pairs(documents.document_bounds, documents.sentence_bounds, max_tokens,
                                short_seq_prob, objective == "nsp", objective == "sop", rand.random, sources),
                    dtype=np.int64).reshape(-1, 5)
    a_start, a_len, b_start, b_len, label = rows.T
    new_a, new_b = truncated_lengths(a_len, b_len, max_tokens)
    a_start = a_start + rng.binomial(a_len - new_a, 0.5)
    b_start = b_start + rng.binomial(b_len - new_b, 0.5)
    return a_start, new_a, b_start, new_b, label


def packed_pair_instances(documents, max_seq_length, short_seq_prob, objective, rand, rng, sources=None):
    """The pairs of `pair_instances`, packed: [CLS] A1 [SEP] B1 [SEP] A2 [SEP] B2 [SEP] ... per sequence.

    The pairs are shuffled, split by label, and each label's pairs fill sequences greedily in
    that order while the next pair fits (1 + sum of len(A) + len(B) + 2 <= max_seq_length). So
    every pair of a sequence has the sequence's label: all in order or all swapped (sop), all
    true continuations or all random (nsp). Pairs are never cut further.

    Both labels get the same number of sequences, so the labels stay balanced per sequence:
    the label whose pairs fill fewer sequences (nsp: the true continuations, which are shorter
    than random-next pairs) is spread over as many, with the largest fill that allows. Its
    sequences then hold as many pairs as the other label's on average, so the number of [SEP]s
    does not give the label away.
    """
    a_start, a_len, b_start, b_len, label = pair_ranges(documents, max_seq_length, short_seq_prob, objective,
                                                        rand, rng, sources)
    order = rng.permutation(label.size)
    groups = [order[label[order] == value] for value in (0, 1)]
    order = np.concatenate(groups)
    if not order.size:
        return empty_table()
    a_start, a_len, b_start, b_len, label = (x[order] for x in (a_start, a_len, b_start, b_len, label))
    cost = a_len + b_len + 2  # the pair and its two [SEP]s
    costs = [cost[:groups[0].size], cost[groups[0].size:]]
    starts = [_greedy_row_starts(c, max_seq_length - 1) for c in costs]
    if starts[0].size and starts[1].size and starts[0].size != starts[1].size:
        dense = 0 if starts[0].size < starts[1].size else 1
        starts[dense] = _spread_row_starts(costs[dense], max_seq_length - 1, starts[1 - dense].size)
    firsts = np.concatenate([starts[0], groups[0].size + starts[1]])
    row_begins = np.zeros(cost.size, dtype=bool)
    row_begins[firsts] = True
    row = np.cumsum(row_begins) - 1
    before = np.cumsum(cost) - cost  # cost of all earlier pairs
    a_col = 1 + before - before[firsts][row]
    b_col = a_col + a_len + 1
    last_in_row = np.append(row[1:] != row[:-1], True)
    separator = np.full_like(a_col, documents.separator)
    ones = np.ones_like(a_col)
    pieces = np.stack([np.stack([row, a_col, a_start, a_len], axis=1),
                       np.stack([row, b_col - 1, separator, ones], axis=1),
                       np.stack([row, b_col, b_start, b_len], axis=1),
                       np.stack([row, b_col + b_len, separator, np.where(last_in_row, 0, 1)], axis=1)], axis=1)
    pieces = pieces.reshape(-1, 4)
    row_len = np.add.reduceat(cost, firsts) - 1  # the last [SEP] is the row's own
    zeros = np.zeros_like(row_len)
    return InstanceTable(row_len, zeros, label[firsts], pieces[pieces[:, LENGTH] > 0],
                         np.stack([row, b_col, b_len + 1], axis=1))


def _spread_row_starts(cost, capacity, rows):
    """Row starts of greedy filling up to the largest limit (at most `capacity`) that makes at least `rows`
    rows (or one item per row). A larger limit never makes more rows, so a binary search finds it."""
    low, high = 1, capacity
    while low < high:
        middle = (low + high + 1) // 2
        if _greedy_row_starts(cost, middle).size >= rows:
            low = middle
        else:
            high = middle - 1
    return _greedy_row_starts(cost, low)


def _greedy_row_starts(cost, capacity):
    """Index of the first item of each row when consecutive items fill rows of `capacity` in order.
    An item always fits an empty row (so with a smaller capacity than an item, it is alone in its row)."""
    ends = np.cumsum(cost).tolist()
    firsts, first, filled = [], 0, 0
    while first < len(ends):
        firsts.append(first)
        first = bisect_right(ends, filled + capacity, first + 1)  # every item fits a row alone
        filled = ends[first - 1]
    return np.array(firsts, dtype=np.int64)


def single_instances(documents, max_seq_length, short_seq_prob, rand):
    """One pass over every document: single segments of up to max_seq_length - 2 tokens, label 0."""
    max_tokens = max_seq_length - 2
    rows = np.array(_plan_singles(documents.document_bounds, documents.sentence_bounds, max_tokens,
                                  short_seq_prob, rand.random), dtype=np.int64).reshape(-1, 2)
    start, length = rows.T
    zeros = np.zeros_like(start)
    return InstanceTable.from_ranges(start, np.minimum(length, max_tokens), zeros, zeros, zeros)


def truncated_lengths(a_len, b_len, max_tokens):
    """Lengths after trimming the longer side one token at a time (B on ties) until both fit in max_tokens."""
    over = a_len + b_len > max_tokens
    shorter = np.minimum(a_len, b_len)
    one_side = 2 * shorter <= max_tokens  # the shorter side stays whole
    new_a = np.where(one_side, np.where(a_len > b_len, max_tokens - b_len, a_len), (max_tokens + 1) // 2)
    new_b = np.where(one_side, np.where(a_len > b_len, b_len, max_tokens - a_len), max_tokens // 2)
    return np.where(over, new_a, a_len), np.where(over, new_b, b_len)


def packed_instances(documents, max_seq_length, rng):
    """Single-segment instances filled with consecutive documents (RoBERTa's FULL-SENTENCES).

    Whole sentences are packed until the next one would not fit; documents are separated by
    [SEP], which is never masked. The document order is shuffled per pass. A sentence longer
    than a whole sequence is cut. Labels are 0 (the single-segment objective; pair objectives
    pack with `packed_pair_instances`).
    """
    max_tokens = max_seq_length - 2
    doc_bounds, sent_bounds = documents.document_bounds, documents.sentence_bounds
    separator = documents.separator
    rows, a_len, pieces = 0, [], []
    buffer, length = [], 0  # buffer: [first token, token count] runs of the current sequence

    def flush():
        nonlocal rows
        while buffer and buffer[-1][0] == separator:
            buffer.pop()  # a document separator with no sentence after it: the closing [SEP] ends the row
        column = 1
        for start, count in buffer:
            count = min(count, max_tokens + 1 - column)  # only a lone over-long sentence is cut
            if count > 0:
                pieces.append((rows, column, start, count))
                column += count
        a_len.append(column - 1)
        rows += 1

    for d in rng.permutation(len(doc_bounds) - 1).tolist():
        if buffer and length + 1 < max_tokens:
            buffer.append([separator, 1])
            length += 1
        for s in range(doc_bounds[d], doc_bounds[d + 1]):
            start, size = sent_bounds[s], sent_bounds[s + 1] - sent_bounds[s]
            if buffer and length + size > max_tokens:
                flush()
                buffer, length = [], 0
            if buffer and buffer[-1][0] + buffer[-1][1] == start and buffer[-1][0] != separator:
                buffer[-1][1] += size  # the next sentence of the same document: one longer run
            else:
                buffer.append([start, size])
            length += size
    if buffer:
        flush()
    a_len = np.array(a_len, dtype=np.int64)
    zeros = np.zeros_like(a_len)
    return InstanceTable(a_len, zeros, zeros.copy(), np.array(pieces, dtype=np.int64).reshape(-1, 4))
