"""InstanceTable rows -> fixed-length model inputs, all rows at once in NumPy.

Row layout: [CLS] A [SEP] for single segments, [CLS] A [SEP] B [SEP] for pairs,
[CLS] A1 [SEP] B1 [SEP] A2 [SEP] B2 [SEP] ... for packed pairs (the table's
b_spans), then padding. The token ranges of each row's pieces are copied with
one gather and one scatter over the whole batch. Every segment's first token
starts a word, so whole-word and n-gram masking never join words across a [SEP].
"""

from dataclasses import dataclass

import numpy as np

from hvd_pretrain.data.instances import COLUMN, LENGTH, ROW, SOURCE, SPAN_LENGTH
from hvd_pretrain.ragged import ragged_index


@dataclass
class Sequences:
    input_ids: np.ndarray  # [rows, max_seq_length] int32
    input_mask: np.ndarray  # [rows, max_seq_length] int32: 1 on real tokens
    segment_ids: np.ndarray  # [rows, max_seq_length] int32: 1 on each B and the [SEP] after it
    candidates: np.ndarray  # [rows, max_seq_length] bool: may be masked (not [CLS], [SEP] or padding)
    word_starts: np.ndarray  # [rows, max_seq_length] bool: first token of a word (and of each segment)
    num_tokens: np.ndarray  # [rows] int64: real tokens, [CLS] and [SEP] included
    labels: np.ndarray  # [rows, 1] int32: next_sentence_labels


def assemble(table, documents, max_seq_length, cls_id, sep_id, pad_id):
    rows, width = len(table), max_seq_length
    a_len, b_len = table.a_len, table.b_len
    has_b = b_len > 0
    num_tokens = table.num_tokens
    pieces = table.pieces
    flat_rows = np.arange(rows)
    ids = np.full((rows, width), pad_id, dtype=np.int32)
    starts = np.zeros((rows, width), dtype=bool)
    if pieces.size:
        source = ragged_index(pieces[:, SOURCE], pieces[:, LENGTH])
        target = ragged_index(pieces[:, ROW] * width + pieces[:, COLUMN], pieces[:, LENGTH])
        ids.reshape(-1)[target] = documents.tokens[source]
        starts.reshape(-1)[target] = documents.word_starts[source]
    ids[:, 0] = cls_id
    ids[flat_rows, a_len + 1] = sep_id
    ids[flat_rows[has_b], (num_tokens - 1)[has_b]] = sep_id
    starts[:, 1] = True
    starts[flat_rows[has_b], (a_len + 2)[has_b]] = True
    columns = np.arange(width, dtype=np.int64)[None, :]
    real = columns < num_tokens[:, None]
    segment_ids = (real & (columns >= (a_len + 2)[:, None])).astype(np.int32)
    spans = table.b_spans
    if spans.size:  # packed pairs: segment B is each span; each span and the column after it start a segment
        first = spans[:, ROW] * width + spans[:, COLUMN]
        segment_ids.reshape(-1)[ragged_index(first, spans[:, SPAN_LENGTH])] = 1
        starts.reshape(-1)[first] = True
        after = spans[:, COLUMN] + spans[:, SPAN_LENGTH]
        inner = after < num_tokens[spans[:, ROW]]
        starts.reshape(-1)[first[inner] + spans[inner, SPAN_LENGTH]] = True
    candidates = real & (columns > 0) & (ids != sep_id) & (ids != cls_id)
    labels = table.label.astype(np.int32).reshape(-1, 1)
    return Sequences(ids, real.astype(np.int32), segment_ids, candidates, starts, num_tokens, labels)
