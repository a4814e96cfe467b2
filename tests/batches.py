"""Synthetic pre-training batches for the trainer's unit tests."""

import numpy as np


def synthetic_batch(batch, seq=16, preds=3, vocab=100, seed=0):
    """One BERT batch as tensors: random ids in [5, vocab), no padding, the first `preds` positions after
    [CLS] masked (labels: the ids there), alternating sentence labels."""
    import tensorflow as tf
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, vocab, size=(batch, seq)).astype(np.int32)
    return dict(input_ids=tf.constant(ids), input_mask=tf.ones((batch, seq), tf.int32),
                segment_ids=tf.zeros((batch, seq), tf.int32),
                masked_lm_positions=tf.constant(np.tile(np.arange(1, preds + 1), (batch, 1)).astype(np.int32)),
                masked_lm_ids=tf.constant(ids[:, 1:preds + 1]), masked_lm_weights=tf.ones((batch, preds)),
                next_sentence_labels=tf.constant((np.arange(batch) % 2).astype(np.int32)))
