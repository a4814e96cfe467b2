"""Documents -> sentence-pair training instances (NSP, SOP) or single-segment ones (none). Pure NumPy.

A document is a list of sentences; a sentence is a pair (token ids, word-start
flags) of NumPy arrays. The procedure follows google-research/bert: sentences
are gathered up to a target length (shorter with short_seq_prob), split at a
random sentence into segment A and B, and the pair is truncated to fit,
trimming the longer side at a random end.

Labels (next_sentence_labels, as in Google's records):
  nsp:  1 = B is a random segment from another document, 0 = B really follows A.
  sop:  1 = A and B are swapped, 0 = in order (ALBERT's sentence order).
  none: a single segment, label 0.
The coin is flipped for every instance, so labels are balanced even when a
group holds a single sentence: then that sentence is cut at a random token.
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class Instance:
    a: np.ndarray
    a_starts: np.ndarray
    b: np.ndarray
    b_starts: np.ndarray
    label: int


def _concat(sentences):
    if len(sentences) == 1:
        return sentences[0]
    return (np.concatenate([s[0] for s in sentences]), np.concatenate([s[1] for s in sentences]))


def _cut(sentence, at):
    ids, starts = sentence
    return (ids[:at], starts[:at]), (ids[at:], starts[at:])


def truncate_pair(a, b, max_tokens, rng):
    """Trim (ids, starts) pairs a and b to at most max_tokens together, longer side first, random ends."""
    la, lb = a[0].size, b[0].size
    if la + lb <= max_tokens:
        return a, b
    if 2 * min(la, lb) <= max_tokens:
        if la > lb:
            new_a, new_b = max_tokens - lb, lb
        else:
            new_a, new_b = la, max_tokens - la
    else:
        new_a, new_b = (max_tokens + 1) // 2, max_tokens // 2
    return _trim(a, la - new_a, rng), _trim(b, lb - new_b, rng)


def _trim(segment, remove, rng):
    if remove <= 0:
        return segment
    front = int(rng.binomial(remove, 0.5))
    end = segment[0].size - (remove - front)
    return segment[0][front:end], segment[1][front:end]


def instances_from_document(documents, doc_index, max_seq_length, short_seq_prob, objective, rng):
    """All instances that one pass over documents[doc_index] yields."""
    document = documents[doc_index]
    pair = objective != "none"
    max_tokens = max_seq_length - (3 if pair else 2)
    target = max_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_tokens + 1))
    out, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += document[i][0].size
        if i == len(document) - 1 or length >= target:
            if not pair:
                ids, starts = _concat(chunk)
                out.append(Instance(ids[:max_tokens], starts[:max_tokens], ids[:0], starts[:0], 0))
            else:
                made, unused = _pair_instance(documents, doc_index, chunk, target, max_tokens, objective, rng)
                i -= unused
                if made is not None:
                    out.append(made)
            chunk, length = [], 0
        i += 1
    return out


def _pair_instance(documents, doc_index, chunk, target, max_tokens, objective, rng):
    """(instance or None, number of chunk sentences to put back for the next instance)."""
    random_next = objective == "nsp" and len(documents) > 1 and rng.random() < 0.5
    swap = objective == "sop" and rng.random() < 0.5
    unused = 0
    if len(chunk) >= 2:
        a_end = int(rng.integers(1, len(chunk)))
        a = _concat(chunk[:a_end])
        if random_next:
            unused = len(chunk) - a_end
        else:
            b = _concat(chunk[a_end:])
    else:
        if chunk[0][0].size < 2 and not random_next:
            return None, 0
        if random_next:
            a = chunk[0]
        else:
            a, b = _cut(chunk[0], int(rng.integers(1, chunk[0][0].size)))
    if random_next:
        b = _random_segment(documents, doc_index, max(1, target - a[0].size), rng)
    if swap:
        a, b = b, a
    a, b = truncate_pair(a, b, max_tokens, rng)
    if a[0].size == 0 or b[0].size == 0:
        return None, unused
    label = 1 if (random_next or swap) else 0
    return Instance(a[0], a[1], b[0], b[1], label), unused


def _random_segment(documents, doc_index, target, rng):
    other = int(rng.integers(0, len(documents) - 1))
    if other >= doc_index:
        other += 1
    document = documents[other]
    start = int(rng.integers(0, len(document)))
    picked, length = [], 0
    for sentence in document[start:]:
        picked.append(sentence)
        length += sentence[0].size
        if length >= target:
            break
    return _concat(picked)


def packed_instances(documents, max_seq_length, separator_id, rng):
    """Single-segment instances filled with consecutive documents (RoBERTa's FULL-SENTENCES).

    Whole sentences are packed until the next one would not fit; documents are separated by
    `separator_id` ([SEP]), which is never masked. The document order is shuffled per pass.
    A sentence longer than a whole sequence is cut. Labels are 0: packing serves the
    single-segment objective only, since one NSP/SOP label cannot describe several pairs.
    """
    max_tokens = max_seq_length - 2
    separator = (np.array([separator_id], dtype=np.int32), np.ones(1, dtype=bool))
    out, buffer, length = [], [], 0

    def flush():
        ids, starts = _concat(buffer)
        out.append(Instance(ids[:max_tokens], starts[:max_tokens], ids[:0], starts[:0], 0))

    for doc_index in rng.permutation(len(documents)).tolist():
        if buffer and length + 1 < max_tokens:
            buffer.append(separator)
            length += 1
        for sentence in documents[doc_index]:
            if buffer and length + sentence[0].size > max_tokens:
                flush()
                buffer, length = [], 0
            buffer.append(sentence)
            length += sentence[0].size
    if buffer:
        flush()
    return out


def assemble(instance, max_seq_length, cls_id, sep_id, pad_id):
    """Fixed-length arrays for one instance.

    Returns (input_ids, input_mask, segment_ids, candidates, word_starts, num_tokens);
    candidates is False on [CLS], [SEP] and padding.
    """
    la, lb = instance.a.size, instance.b.size
    n = la + lb + (3 if lb else 2)
    ids = np.full(max_seq_length, pad_id, dtype=np.int32)
    segment_ids = np.zeros(max_seq_length, dtype=np.int32)
    candidates = np.zeros(max_seq_length, dtype=bool)
    starts = np.zeros(max_seq_length, dtype=bool)
    ids[0] = cls_id
    ids[1:1 + la] = instance.a
    ids[1 + la] = sep_id
    candidates[1:1 + la] = instance.a != sep_id  # a packed sequence separates documents with [SEP]
    starts[1:1 + la] = instance.a_starts
    starts[1] = True
    if lb:
        b0 = 2 + la
        ids[b0:b0 + lb] = instance.b
        ids[b0 + lb] = sep_id
        segment_ids[b0:b0 + lb + 1] = 1
        candidates[b0:b0 + lb] = True
        starts[b0:b0 + lb] = instance.b_starts
        starts[b0] = True
    input_mask = np.zeros(max_seq_length, dtype=np.int32)
    input_mask[:n] = 1
    return ids, input_mask, segment_ids, candidates, starts, n


def assemble_batch(instances, max_seq_length, cls_id, sep_id, pad_id):
    """`assemble` for many instances at once: 2-D arrays with one row per instance."""
    rows = len(instances)
    ids = np.full((rows, max_seq_length), pad_id, dtype=np.int32)
    segment_ids = np.zeros((rows, max_seq_length), dtype=np.int32)
    starts = np.zeros((rows, max_seq_length), dtype=bool)
    lengths_a = np.fromiter((i.a.size for i in instances), dtype=np.int64, count=rows)
    lengths_b = np.fromiter((i.b.size for i in instances), dtype=np.int64, count=rows)
    num_tokens = lengths_a + lengths_b + np.where(lengths_b > 0, 3, 2)
    ids[:, 0] = cls_id
    for row, (instance, la, lb) in enumerate(zip(instances, lengths_a.tolist(), lengths_b.tolist())):
        ids[row, 1:1 + la] = instance.a
        starts[row, 1:1 + la] = instance.a_starts
        if lb:
            b0 = 2 + la
            ids[row, b0:b0 + lb] = instance.b
            starts[row, b0:b0 + lb] = instance.b_starts
            segment_ids[row, b0:b0 + lb + 1] = 1
            starts[row, b0] = True
    columns = np.arange(max_seq_length)
    sep_a = 1 + lengths_a
    ids[np.arange(rows), sep_a] = sep_id
    has_b = lengths_b > 0
    ids[np.flatnonzero(has_b), (num_tokens - 1)[has_b]] = sep_id
    starts[:, 1] = True
    input_mask = (columns[None, :] < num_tokens[:, None]).astype(np.int32)
    candidates = ((columns[None, :] > 0) & (columns[None, :] < num_tokens[:, None] - 1)
                  & (columns[None, :] != sep_a[:, None]) & (ids != sep_id) & (ids != cls_id))
    return ids, input_mask, segment_ids, candidates, starts, num_tokens
