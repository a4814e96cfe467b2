"""The record layout: google-research/bert's create_pretraining_data.py features, names and dtypes."""

STATIC_INT_FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
                       "next_sentence_labels")
STATIC_FLOAT_FEATURES = ("masked_lm_weights",)
# Dynamic masking stores the unmasked sequence and, in word_starts, what the masker needs:
# 0 never masked ([CLS], [SEP], padding), 1 first token of a word, 2 continuation of a word.
DYNAMIC_INT_FEATURES = ("input_ids", "input_mask", "segment_ids", "word_starts", "next_sentence_labels")


def feature_lengths(max_seq_length, max_predictions_per_seq, masking="static"):
    """{feature name: (dtype, length)}; dtype is "int64" or "float32" as stored in the records."""
    seq, pred = max_seq_length, max_predictions_per_seq
    if masking == "dynamic":
        return {"input_ids": ("int64", seq), "input_mask": ("int64", seq), "segment_ids": ("int64", seq),
                "word_starts": ("int64", seq), "next_sentence_labels": ("int64", 1)}
    return {"input_ids": ("int64", seq), "input_mask": ("int64", seq), "segment_ids": ("int64", seq),
            "masked_lm_positions": ("int64", pred), "masked_lm_ids": ("int64", pred),
            "masked_lm_weights": ("float32", pred), "next_sentence_labels": ("int64", 1)}
