"""The tf.data input pipeline: this rank's shards -> parsed, batched features with static shapes.

Per rank: its own disjoint shard subset (`shards_for_rank`), file order shuffled
with a fixed seed every epoch, records read by a deterministic parallel
interleave, a seeded shuffle buffer, batched with drop_remainder=True, parsed
in batches, prefetched. No unseeded `list_files` shuffle: the same seed, rank
and world give the same stream after a restart.

Output (a dict per batch; all int32 except masked_lm_weights float32):
  input_ids, input_mask, segment_ids   [batch, max_seq_length]
  masked_lm_positions, masked_lm_ids   [batch, max_predictions_per_seq]
  masked_lm_weights                    [batch, max_predictions_per_seq]
  next_sentence_labels                 [batch, 1]  (as in google-research/bert's run_pretraining.py)

Records stored unmasked (`--masking=dynamic`) are masked here, every epoch anew;
see `dynamic_masking.py`.
"""

import os

from hvd_pretrain.data.shards import list_shards, shards_for_rank
from hvd_pretrain.data.tfrecord import decode_example, iter_records
from hvd_pretrain.tfcompat import tf

AUTOTUNE = tf.data.AUTOTUNE


def static_feature_spec(max_seq_length, max_predictions_per_seq):
    """Google's run_pretraining.py input spec."""
    seq, pred = max_seq_length, max_predictions_per_seq
    return {
        "input_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([pred], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([pred], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([pred], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def dynamic_feature_spec(max_seq_length):
    seq = max_seq_length
    return {
        "input_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "word_starts": tf.io.FixedLenFeature([seq], tf.int64),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def detect_masking(path):
    """"static" or "dynamic", from the features of the first record of `path`."""
    for record in iter_records(path, check_crc=False):
        return "dynamic" if "word_starts" in decode_example(record) else "static"
    return "static"


def _to_int32(features):
    return {k: (tf.cast(v, tf.int32) if v.dtype == tf.int64 else v) for k, v in features.items()}


def make_dataset(files, batch_size, max_seq_length, max_predictions_per_seq, rank=0, world=1, seed=0,
                 shuffle=True, repeat=True, shuffle_buffer=10000, cycle_length=4, masking=None,
                 masking_rule=None, epoch_offset=0):
    """A tf.data.Dataset of batches for one rank. `files`: a data dir, glob, or list of shard files.

    masking: "static" | "dynamic" | None (detected from the first record). Dynamic masking
    needs `masking_rule` (see dynamic_masking.rule_from_manifest); `epoch_offset` is the
    epoch number the stream starts at (for a resumed run).
    """
    files = list_shards(files)
    mine = shards_for_rank(files, rank, world)
    masking = masking or detect_masking(mine[0])
    ds = tf.data.Dataset.from_tensor_slices(mine)
    if shuffle:
        ds = ds.shuffle(len(mine), seed=seed * 7919 + rank, reshuffle_each_iteration=True)
    if masking == "dynamic":
        from hvd_pretrain.data.dynamic_masking import dynamic_dataset

        return dynamic_dataset(ds, mine, batch_size, max_seq_length, max_predictions_per_seq, masking_rule,
                               rank=rank, seed=seed, shuffle=shuffle, repeat=repeat, shuffle_buffer=shuffle_buffer,
                               cycle_length=cycle_length, epoch_offset=epoch_offset)
    if repeat:
        ds = ds.repeat()
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(mine)),
                       num_parallel_calls=AUTOTUNE, deterministic=True)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed * 7919 + rank + 1)
    spec = static_feature_spec(max_seq_length, max_predictions_per_seq)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda records: _to_int32(tf.io.parse_example(records, spec)), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def make_stream_dataset(sources, cursor, rank, batch_size, max_seq_length, max_predictions_per_seq,
                        masking=None, masking_rule=None, block=None, with_keys=False):
    """This rank's training batches in the exact order of a data cursor, without end.

    sources: [(files, counts)] per corpus: every shard of the corpus in the cursor's order
    (list_shards) and its records (stream.record_counts); one source with a DataCursor
    (data/cursor.py), or several with a MixtureCursor (data/mixture.py). A run resumed from the
    cursor saved with its checkpoint sees exactly the batches a run without the restart would have
    seen; masks of dynamic masking are keyed by (seed, epoch, shard, record), so they do not
    depend on the rank count either. Output: the batches of make_dataset; with_keys adds
    "example_keys" [batch, 4] int64: (seed, epoch, shard, record) of each example.
    """
    from hvd_pretrain.data.cursor import DEFAULT_BLOCK
    from hvd_pretrain.data.mixture import MixtureCursor, mixed_stream
    from hvd_pretrain.data.stream import rank_stream

    block = block or DEFAULT_BLOCK
    files = sources[0][0]
    if isinstance(cursor, MixtureCursor):
        stream = lambda: mixed_stream(sources, cursor, rank, block)  # noqa: E731
    else:
        stream = lambda: rank_stream(files, sources[0][1], cursor, rank, block)  # noqa: E731
    masking = masking or detect_masking(files[0])
    ds = tf.data.Dataset.from_generator(
        stream, output_signature=(tf.TensorSpec([4], tf.int64), tf.TensorSpec([], tf.string)))
    ds = ds.batch(batch_size, drop_remainder=True)
    if masking == "dynamic":
        from hvd_pretrain.data.dynamic_masking import masking_fn, rule_from_manifest

        rule = masking_rule or rule_from_manifest(os.path.dirname(files[0]), max_predictions_per_seq)
        rule.max_predictions = max_predictions_per_seq
        parse = masking_fn(batch_size, max_seq_length, max_predictions_per_seq, rule)
    else:
        spec = static_feature_spec(max_seq_length, max_predictions_per_seq)
        parse = lambda keys, records: _to_int32(tf.io.parse_example(records, spec))  # noqa: E731
    if with_keys:
        ds = ds.map(lambda keys, records: dict(parse(keys, records), example_keys=keys), num_parallel_calls=AUTOTUNE)
    else:
        ds = ds.map(parse, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def explain_read_error(files, error):
    """A DataError naming the shard behind a tf.data read error (found by re-checking the files)."""
    from hvd_pretrain.errors import DataError, quoted
    from hvd_pretrain.data.shards import verify_shards

    try:
        verify_shards(files)
    except DataError as found:
        return found
    first_line = quoted(error)
    return DataError("reading the shards %s failed: %s; check them with hvd-data inspect --verify"
                     % (",".join(files[:3]) + ("..." if len(files) > 3 else ""), first_line))


def checked_iterator(dataset, files):
    """Iterate `dataset`; a corrupt or truncated shard stops it with a DataError naming the file."""
    iterator = iter(dataset)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
            raise explain_read_error(list_shards(files), e) from None
        yield batch
