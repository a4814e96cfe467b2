"""Documents -> sentence-pair training instances (NSP, SOP) or single-segment ones (none).

The procedure follows google-research/bert: sentences are gathered up to a
target length (shorter with short_seq_prob), split at a random sentence into
segment A and B, and the pair is truncated to fit, trimming the longer side,
each removed token coming from the front or the back with equal chance.

Labels (next_sentence_labels, as in Google's records):
  nsp:  1 = B is a random segment from another document, 0 = B really follows A.
  sop:  1 = A and B are swapped, 0 = in order (ALBERT's sentence order).
  none: a single segment, label 0.
The coin is flipped for every instance, so labels are balanced even when a
group holds a single sentence: then that sentence is cut at a random token.

Instances are token ranges of a `TokenDocuments` (runs of consecutive
sentences are contiguous there), so planning one costs a few integer
operations: the walk over a document's sentences is a Python loop over
integers with `bisect`, and truncation, shuffling and batching are NumPy
operations on all instances at once. The result is an `InstanceTable`.
"""

import random
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

# Columns of InstanceTable.pieces: instance row, first column in the sequence, first token, token count.
ROW, COLUMN, SOURCE, LENGTH = range(4)


@dataclass
class InstanceTable:
    """Instances as token ranges. Row r's sequence is [CLS] A [SEP] (B [SEP] if b_len[r] > 0).

    A and B are made of `pieces`: token ranges of the documents copied to a column of the
    row's sequence (A starts at column 1, B at column a_len + 2). Most segments are one
    piece; a packed sequence has one per run of sentences and one per separator.
    """

    a_len: np.ndarray  # [rows] int64
    b_len: np.ndarray  # [rows] int64
    label: np.ndarray  # [rows] int64
    pieces: np.ndarray  # [num_pieces, 4] int64: ROW, COLUMN, SOURCE, LENGTH; sorted by row

    def __len__(self):
        return self.a_len.size

    def shuffled(self, rng):
        """The same instances in a random order (rows renumbered, pieces re-sorted by row)."""
        order = rng.permutation(len(self))
        new_row = np.empty_like(order)
        new_row[order] = np.arange(order.size)
        pieces = self.pieces.copy()
        pieces[:, ROW] = new_row[pieces[:, ROW]]
        pieces = pieces[np.argsort(pieces[:, ROW], kind="stable")]
        return InstanceTable(self.a_len[order], self.b_len[order], self.label[order], pieces)

    def batches(self, size):
        """Consecutive sub-tables of at most `size` rows, each with rows numbered from 0."""
        bounds = np.searchsorted(self.pieces[:, ROW], np.arange(0, len(self) + size, size))
        for k, first in enumerate(range(0, len(self), size)):
            pieces = self.pieces[bounds[k]:bounds[k + 1]].copy()
            pieces[:, ROW] -= first
            last = first + size
            yield InstanceTable(self.a_len[first:last], self.b_len[first:last], self.label[first:last], pieces)

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
        offsets = np.cumsum([0] + [len(t) for t in tables[:-1]])
        pieces = []
        for table, offset in zip(tables, offsets.tolist()):
            shifted = table.pieces.copy()
            shifted[:, ROW] += offset
            pieces.append(shifted)
        return cls(*(np.concatenate([getattr(t, name) for t in tables]) for name in ("a_len", "b_len", "label")),
                   np.concatenate(pieces))


def empty_table():
    none = np.zeros(0, dtype=np.int64)
    return InstanceTable(none, none, none, np.zeros((0, 4), dtype=np.int64))


def python_random(seed_sequence):
    """A `random.Random` for the per-document walk, seeded from a NumPy SeedSequence."""
    return random.Random(int(seed_sequence.generate_state(2, dtype=np.uint64)[0]))


def pair_instances(documents, max_seq_length, short_seq_prob, objective, rand, rng):
    """One pass over every document: NSP or SOP pairs, truncated. rand: random.Random; rng: NumPy Generator."""
    max_tokens = max_seq_length - 3
    rows = np.array(_plan_pairs(documents.document_bounds, documents.sentence_bounds, max_tokens,
                                short_seq_prob, objective == "nsp", objective == "sop", rand.random),
                    dtype=np.int64).reshape(-1, 5)
    a_start, a_len, b_start, b_len, label = rows.T
    new_a, new_b = truncated_lengths(a_len, b_len, max_tokens)
    a_start = a_start + rng.binomial(a_len - new_a, 0.5)
    b_start = b_start + rng.binomial(b_len - new_b, 0.5)
    return InstanceTable.from_ranges(a_start, new_a, b_start, new_b, label)


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


def _plan_pairs(doc_bounds, sent_bounds, max_tokens, short_seq_prob, nsp, sop, rand):
    """Untruncated pairs as a flat list: a_start, a_len, b_start, b_len, label for each instance."""
    out = []
    num_docs = len(doc_bounds) - 1
    random_next_possible = nsp and num_docs > 1
    for d in range(num_docs):
        first, last = doc_bounds[d], doc_bounds[d + 1]
        target = max_tokens
        if rand() < short_seq_prob:
            target = 2 + int(rand() * (max_tokens - 1))
        c0 = first
        while c0 < last:
            t0 = sent_bounds[c0]
            # the group: sentences c0 .. c1-1, up to the first that reaches the target, or the document's end
            c1 = bisect_left(sent_bounds, t0 + target, c0 + 1, last)
            t1 = sent_bounds[c1]
            random_next = random_next_possible and rand() < 0.5
            following = c1
            if c1 - c0 >= 2:
                a_end = c0 + 1 + int(rand() * (c1 - c0 - 1))
                a_start, a_stop = t0, sent_bounds[a_end]
                if random_next:
                    following = a_end  # the unused sentences start the next group
                else:
                    b_start, b_stop = a_stop, t1
            elif random_next:
                a_start, a_stop = t0, t1
            elif t1 - t0 >= 2:
                cut = t0 + 1 + int(rand() * (t1 - t0 - 1))
                a_start, a_stop, b_start, b_stop = t0, cut, cut, t1
            else:
                c0 = following
                continue
            if random_next:
                want = max(1, target - (a_stop - a_start))
                other = int(rand() * (num_docs - 1))
                other += other >= d
                o0, o1 = doc_bounds[other], doc_bounds[other + 1]
                s = o0 + int(rand() * (o1 - o0))
                e = bisect_left(sent_bounds, sent_bounds[s] + want, s + 1, o1)
                b_start, b_stop = sent_bounds[s], sent_bounds[e]
            label = 1 if random_next else 0
            if sop and rand() < 0.5:
                a_start, a_stop, b_start, b_stop, label = b_start, b_stop, a_start, a_stop, 1
            out += (a_start, a_stop - a_start, b_start, b_stop - b_start, label)
            c0 = following
    return out


def _plan_singles(doc_bounds, sent_bounds, max_tokens, short_seq_prob, rand):
    """Single segments as a flat list: start, length (untruncated) for each instance."""
    out = []
    for d in range(len(doc_bounds) - 1):
        first, last = doc_bounds[d], doc_bounds[d + 1]
        target = max_tokens
        if rand() < short_seq_prob:
            target = 2 + int(rand() * (max_tokens - 1))
        c0 = first
        while c0 < last:
            t0 = sent_bounds[c0]
            c1 = bisect_left(sent_bounds, t0 + target, c0 + 1, last)
            out += (t0, sent_bounds[c1] - t0)
            c0 = c1
    return out


def packed_instances(documents, max_seq_length, rng):
    """Single-segment instances filled with consecutive documents (RoBERTa's FULL-SENTENCES).

    Whole sentences are packed until the next one would not fit; documents are separated by
    [SEP], which is never masked. The document order is shuffled per pass. A sentence longer
    than a whole sequence is cut. Labels are 0: packing serves the single-segment objective
    only, since one NSP/SOP label cannot describe several pairs.
    """
    max_tokens = max_seq_length - 2
    doc_bounds, sent_bounds = documents.document_bounds, documents.sentence_bounds
    separator = documents.separator
    rows, a_len, pieces = 0, [], []
    buffer, length = [], 0  # buffer: [first token, token count] runs of the current sequence

    def flush():
        nonlocal rows
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
