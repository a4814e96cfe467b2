"""Dynamic masking (RoBERTa-style): records are stored unmasked and masked in tf.data, anew every epoch.

Records made with `--masking=dynamic` hold input_ids, input_mask, segment_ids,
next_sentence_labels and `word_starts` (0: never masked — [CLS], [SEP], padding;
1: first token of a word; 2: continuation of a word). The masking itself is the
NumPy `mask_sequence` of static masking, so 80/10/10, whole-word and n-gram
rules are identical. Each record's mask is drawn from a generator seeded with
(seed, epoch, shard index, record index): the same seed and epoch give the same
masks whatever the shuffle order, rank count or restart, and another epoch
gives other masks.
"""

import os

import numpy as np

from hvd_pretrain.errors import DataError
from hvd_pretrain.data.masking import MaskingRule, mask_sequence
from hvd_pretrain.data.shards import list_shards, read_manifest
from hvd_pretrain.tfcompat import tf

NEVER, WORD_START, WORD_CONTINUES = 0, 1, 2


def rule_from_manifest(data_dir, max_predictions_per_seq=None):
    """The MaskingRule a dynamic-masking data dir was made for (its config and its tokenizer)."""
    from hvd_pretrain.vocab.tokenizer import load_tokenizer

    manifest = read_manifest(data_dir)
    config, vocab = manifest.get("config", {}), manifest.get("tokenizer", {}).get("path", "")
    if not vocab or not os.path.exists(vocab):
        raise DataError("dynamic masking needs the vocab of %s (%s), which is gone; restore it or re-create the data"
                        % (data_dir, vocab))
    tokenizer = load_tokenizer(vocab)
    if tokenizer.fingerprint != manifest.get("tokenizer_fingerprint"):
        raise DataError("the vocab %s changed since %s was made; re-create the data" % (vocab, data_dir))
    return MaskingRule(mask_id=tokenizer.mask_id, random_ids=tokenizer.random_ids,
                       max_predictions=int(max_predictions_per_seq or config.get("max_predictions_per_seq", 20)),
                       masked_lm_prob=config.get("masked_lm_prob", 0.15),
                       whole_word=bool(config.get("whole_word_masking")), ngram_max=int(config.get("ngram_max", 1)),
                       mask_prob=config.get("mask_prob", 0.8), random_prob=config.get("random_prob", 0.1))


def mask_batch(input_ids, word_starts, input_mask, keys, rule, max_predictions):
    """NumPy: mask a batch. keys[i] = (seed, epoch, shard index, record index) seeds row i."""
    batch = input_ids.shape[0]
    out = input_ids.astype(np.int32, copy=True)
    positions = np.zeros((batch, max_predictions), dtype=np.int32)
    labels = np.zeros((batch, max_predictions), dtype=np.int32)
    weights = np.zeros((batch, max_predictions), dtype=np.float32)
    for row in range(batch):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) for k in keys[row]])))
        ids = out[row]
        masked, chosen, original = mask_sequence(ids, word_starts[row] > NEVER, word_starts[row] != WORD_CONTINUES,
                                                 int(input_mask[row].sum()), rng, rule)
        out[row] = masked
        positions[row, :chosen.size] = chosen
        labels[row, :chosen.size] = original
        weights[row, :chosen.size] = 1.0
    return out, positions, labels, weights


def dynamic_dataset(files_ds, files, batch_size, max_seq_length, max_predictions_per_seq, rule, rank=0, seed=0,
                    shuffle=True, repeat=True, shuffle_buffer=10000, cycle_length=4, epoch_offset=0):
    """Batches from unmasked records, masked per epoch. `files_ds` yields this rank's (shuffled) file names."""
    if rule is None:
        rule = rule_from_manifest(os.path.dirname(files[0]), max_predictions_per_seq)
    rule.max_predictions = max_predictions_per_seq
    all_files = _all_shards_beside(files)
    index_of = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(all_files), tf.constant(list(range(len(all_files))),
                                                                                 dtype=tf.int64)), -1)

    def records_of(path, epoch):
        shard = index_of.lookup(path)
        return tf.data.TFRecordDataset(path).enumerate().map(
            lambda i, record: (tf.stack([tf.constant(seed, tf.int64), epoch, shard, i]), record))

    def one_epoch(epoch):
        return files_ds.interleave(lambda path: records_of(path, epoch), cycle_length=min(cycle_length, len(files)),
                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    end = np.iinfo(np.int64).max if repeat else epoch_offset + 1
    ds = tf.data.Dataset.range(epoch_offset, end).flat_map(one_epoch)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed * 7919 + rank + 1)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(masking_fn(batch_size, max_seq_length, max_predictions_per_seq, rule),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def masking_fn(batch_size, max_seq_length, max_predictions_per_seq, rule):
    """tf.data map function: (keys [B, 4] int64, records [B] string) -> the batch's masked features.

    keys[i] = (seed, epoch, shard index, record index) seeds row i's mask (mask_batch).
    """
    spec = {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "word_starts": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }

    def parse_and_mask(keys, records):
        features = tf.io.parse_example(records, spec)
        masked, positions, labels, weights = tf.numpy_function(
            lambda ids, starts, mask, k: mask_batch(ids, starts, mask, k, rule, max_predictions_per_seq),
            [features["input_ids"], features["word_starts"], features["input_mask"], keys],
            [tf.int32, tf.int32, tf.int32, tf.float32], stateful=False)
        seq_shape, pred_shape = [batch_size, max_seq_length], [batch_size, max_predictions_per_seq]
        for tensor, shape in ((masked, seq_shape), (positions, pred_shape), (labels, pred_shape),
                              (weights, pred_shape)):
            tensor.set_shape(shape)
        return {
            "input_ids": masked,
            "input_mask": tf.cast(features["input_mask"], tf.int32),
            "segment_ids": tf.cast(features["segment_ids"], tf.int32),
            "masked_lm_positions": positions, "masked_lm_ids": labels, "masked_lm_weights": weights,
            "next_sentence_labels": tf.cast(features["next_sentence_labels"], tf.int32),
        }

    return parse_and_mask


def _all_shards_beside(files):
    """Every shard of the data dir(s) these files come from: the shard index must not depend on the rank."""
    found = set()
    for directory in sorted({os.path.dirname(f) for f in files}):
        try:
            found.update(list_shards(directory))
        except DataError:
            continue
    found.update(files)
    return sorted(found)
