"""The features a pretrainer reads, and zero features of the same shapes to create its variables.

Names, dtypes and shapes are those of google-research/bert's run_pretraining.py
input_fn_builder, as the input pipeline (hvd_pretrain/data/pipeline.py) yields them.
B = micro-batch, S = max_seq_length, P = max_predictions_per_seq:

    input_ids, input_mask, segment_ids     int32   [B, S]
    masked_lm_positions, masked_lm_ids     int32   [B, P]
    masked_lm_weights                      float32 [B, P]   1.0 for a real target, 0.0 for padding
    next_sentence_labels                   int32   [B, 1]   NSP/SOP label
"""

from hvd_pretrain.tfcompat import tf

FEATURE_DTYPES = {
    "input_ids": tf.int32, "input_mask": tf.int32, "segment_ids": tf.int32,
    "masked_lm_positions": tf.int32, "masked_lm_ids": tf.int32, "masked_lm_weights": tf.float32,
    "next_sentence_labels": tf.int32,
}


def dummy_features(batch, seq_length, predictions, masked_weight=0.0):
    """Features of the shapes above: every token real, every target id 0, weights `masked_weight`.

    Used to create a model's variables before training (masked_weight=1.0 also makes every
    metric the model reports appear, e.g. mlm_correct).
    """
    ones = tf.ones([batch, seq_length], tf.int32)
    return {
        "input_ids": ones, "input_mask": ones, "segment_ids": tf.zeros_like(ones),
        "masked_lm_positions": tf.zeros([batch, predictions], tf.int32),
        "masked_lm_ids": tf.zeros([batch, predictions], tf.int32),
        "masked_lm_weights": tf.fill([batch, predictions], float(masked_weight)),
        "next_sentence_labels": tf.zeros([batch, 1], tf.int32),
    }
