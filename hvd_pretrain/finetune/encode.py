"""Task examples -> model features, as BERT's run_classifier.py builds them.

    single sentence:  [CLS] a [SEP]            segment ids 0 ... 0
    pair:             [CLS] a [SEP] b [SEP]    segment ids 0 ... 0 1 ... 1

Texts longer than max_seq_length are cut at the end; in a pair the longer text loses a token
first (run_classifier.py's _truncate_seq_pair). Batches are padded to their longest example.
"""

import numpy as np


def _truncate_pair(a, b, budget):
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()


class EncodedSplit:
    """Token ids and segment ids of every example (ragged), and label indices [N] int32."""

    def __init__(self, ids, segments, labels, pad_id):
        self.ids = ids
        self.segments = segments
        self.labels = np.asarray(labels, np.int32)
        self.pad_id = int(pad_id)

    def __len__(self):
        return len(self.ids)

    def batch(self, indices):
        """(features dict of [b, longest] int32 arrays, labels [b]) for `indices`."""
        width = max(len(self.ids[i]) for i in indices)
        ids = np.full((len(indices), width), self.pad_id, np.int32)
        segments = np.zeros((len(indices), width), np.int32)
        mask = np.zeros((len(indices), width), np.int32)
        for row, i in enumerate(indices):
            n = len(self.ids[i])
            ids[row, :n], segments[row, :n], mask[row, :n] = self.ids[i], self.segments[i], 1
        return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}, self.labels[list(indices)]


def encode_task(task, tokenizer, label_order, max_seq_length):
    """An EncodedSplit of a Task (finetune/tasks.py) with a Tokenizer (vocab/tokenizer.py)."""
    index = {label: i for i, label in enumerate(label_order)}
    texts_a = tokenizer.encode_batch(task.text_a)
    texts_b = tokenizer.encode_batch(task.text_b) if task.is_pair else None
    ids, segments = [], []
    for k, a in enumerate(texts_a):
        a = list(a)
        if texts_b is not None:
            b = list(texts_b[k])
            _truncate_pair(a, b, max_seq_length - 3)
            seq = [tokenizer.cls_id] + a + [tokenizer.sep_id] + b + [tokenizer.sep_id]
            seg = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        else:
            a = a[: max_seq_length - 2]
            seq = [tokenizer.cls_id] + a + [tokenizer.sep_id]
            seg = [0] * len(seq)
        ids.append(np.asarray(seq, np.int32))
        segments.append(np.asarray(seg, np.int32))
    return EncodedSplit(ids, segments, [index[label] for label in task.labels], tokenizer.pad_id)
