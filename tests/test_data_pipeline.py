"""The tf.data pipeline, and record interchange with google-research/bert in both directions."""

import os

import numpy as np
import pytest

from hvd_pretrain.corpus import default_corpus
from hvd_pretrain.data import DataConfig, create_pretraining_data, list_shards, make_dataset
from hvd_pretrain.tfcompat import tf
from hvd_pretrain.vocab import train_sentencepiece

SEQ, PRED = 128, 20


def google_feature_spec(max_seq_length, max_predictions_per_seq):
    """Written out as in google-research/bert run_pretraining.py's input_fn_builder."""
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def write_google_style_records(path, num, start):
    """Records built the way Google's create_pretraining_data.py builds them (tf.train.Example + TF writer)."""
    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    rng = np.random.default_rng(start)
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(start, start + num):
            n = int(rng.integers(10, SEQ))
            ids = [101] + list(rng.integers(1000, 30000, n - 2)) + [102] + [0] * (SEQ - n)
            ids[1] = i  # a unique id per record
            positions = sorted(rng.choice(np.arange(2, n - 1), 3, replace=False).tolist()) + [0] * (PRED - 3)
            features = {
                "input_ids": ints(ids), "input_mask": ints([1] * n + [0] * (SEQ - n)),
                "segment_ids": ints([0] * SEQ), "masked_lm_positions": ints(positions),
                "masked_lm_ids": ints([7] * 3 + [0] * (PRED - 3)),
                "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0] * 3 + [0.0] * 17)),
                "next_sentence_labels": ints([i % 2]),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


@pytest.fixture(scope="module")
def our_data(tmp_path_factory):
    with open(default_corpus(), encoding="utf-8") as f:
        text = f.read(200_000)
    root = tmp_path_factory.mktemp("ours")
    corpus = root / "c.txt"
    corpus.write_text(text[:text.rfind("\n\n") + 1], encoding="utf-8")
    train_sentencepiece([str(corpus)], str(root / "vocab"), 1500, num_threads=1)
    manifest = create_pretraining_data([str(corpus)], str(root / "vocab"), str(root / "data"),
                                       DataConfig(dupe_factor=2, num_shards=4))
    return str(root / "data"), manifest


@pytest.fixture(scope="module")
def google_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("google")
    for shard in range(4):
        write_google_style_records(str(root / ("tf_examples.tfrecord-%d" % shard)), 50, shard * 50)
    return str(root)


def test_our_records_parse_with_googles_feature_spec(our_data):
    data_dir, manifest = our_data
    spec = google_feature_spec(SEQ, PRED)
    count = 0
    records = tf.data.TFRecordDataset(list_shards(data_dir))  # TensorFlow also checks every CRC
    for example in records.map(lambda record: tf.io.parse_single_example(record, spec)):
        count += 1
    assert count == manifest["num_instances"]
    assert example["masked_lm_weights"].dtype == tf.float32 and example["input_ids"].dtype == tf.int64


def test_googles_records_train_through_our_pipeline(google_data):
    files = list_shards(os.path.join(google_data, "tf_examples.tfrecord-*"))
    ds = make_dataset(files, batch_size=1, max_seq_length=SEQ, max_predictions_per_seq=PRED, shuffle=False,
                      repeat=False)
    seen = []
    for batch in ds:
        assert batch["masked_lm_ids"][0, :3].numpy().tolist() == [7, 7, 7]
        assert batch["next_sentence_labels"][0, 0] == batch["input_ids"][0, 1] % 2
        seen.append(int(batch["input_ids"][0, 1]))
    assert sorted(seen) == list(range(200))


def test_batches_have_static_shapes_and_documented_dtypes(our_data):
    data_dir, _ = our_data
    ds = make_dataset(data_dir, batch_size=8, max_seq_length=SEQ, max_predictions_per_seq=PRED, rank=1, world=2)
    shapes = {k: (v.dtype, v.shape.as_list()) for k, v in ds.element_spec.items()}
    assert shapes == {
        "input_ids": (tf.int32, [8, SEQ]), "input_mask": (tf.int32, [8, SEQ]), "segment_ids": (tf.int32, [8, SEQ]),
        "masked_lm_positions": (tf.int32, [8, PRED]), "masked_lm_ids": (tf.int32, [8, PRED]),
        "masked_lm_weights": (tf.float32, [8, PRED]), "next_sentence_labels": (tf.int32, [8, 1])}
    batch = next(iter(ds))
    assert batch["input_ids"][:, 0].numpy().tolist() == [2] * 8


def test_each_rank_sees_its_own_shards_exactly_once_per_epoch(google_data):
    files = list_shards(os.path.join(google_data, "*"))
    for world in (1, 2, 4):
        per_rank = []
        for rank in range(world):
            ds = make_dataset(files, batch_size=1, max_seq_length=SEQ, max_predictions_per_seq=PRED, rank=rank,
                              world=world, seed=3, shuffle=True, repeat=False)
            per_rank.append([int(b["input_ids"][0, 1]) for b in ds])
        flat = [i for ids in per_rank for i in ids]
        assert sorted(flat) == list(range(200)), "world %d" % world
        assert len(set(flat)) == len(flat)


def test_order_is_reproducible_from_the_seed(google_data):
    def first_ids(seed):
        ds = make_dataset(google_data, batch_size=4, max_seq_length=SEQ, max_predictions_per_seq=PRED, rank=0,
                          world=2, seed=seed)
        return [b["input_ids"][:, 1].numpy().tolist() for b in ds.take(30)]

    assert first_ids(5) == first_ids(5)
    assert first_ids(5) != first_ids(6)
    # repeated epochs keep to the rank's own shards
    assert {i // 50 for batch in first_ids(5) for i in batch} == {0, 2}


@pytest.fixture(scope="module")
def dynamic_data(our_data):
    data_dir, manifest = our_data
    root = os.path.dirname(data_dir)
    out = os.path.join(root, "dynamic")
    create_pretraining_data([os.path.join(root, "c.txt")], os.path.join(root, "vocab"), out,
                            DataConfig(dupe_factor=1, num_shards=2, masking="dynamic", whole_word_masking=True,
                                       ngram_max=3))
    return out


def _masks_by_record(data_dir, seed, epoch, shuffle):
    ds = make_dataset(data_dir, batch_size=32, max_seq_length=SEQ, max_predictions_per_seq=PRED, seed=seed,
                      shuffle=shuffle, repeat=False, epoch_offset=epoch)
    out = {}
    for batch in ds:
        ids = batch["input_ids"].numpy()
        for row in range(ids.shape[0]):
            k = int(batch["masked_lm_weights"][row].numpy().sum())
            positions = batch["masked_lm_positions"][row, :k].numpy()
            original = ids[row].copy()
            original[positions] = batch["masked_lm_ids"][row, :k].numpy()
            out.setdefault(original.tobytes(), []).append((positions.tolist(), ids[row].tolist()))
    return out


def test_dynamic_masking_is_reproducible_per_epoch_and_differs_across_epochs(dynamic_data):
    a = _masks_by_record(dynamic_data, seed=1, epoch=0, shuffle=False)
    again = _masks_by_record(dynamic_data, seed=1, epoch=0, shuffle=True)  # another order, same masks
    other_epoch = _masks_by_record(dynamic_data, seed=1, epoch=1, shuffle=False)
    unique = [key for key, masks in a.items() if len(masks) == 1]
    assert len(unique) > 500
    common = [key for key in unique if key in again and len(again[key]) == 1]
    assert len(common) > 0.8 * len(unique)
    assert all(a[key] == again[key] for key in common)
    changed = sum(a[key][0][0] != other_epoch[key][0][0] for key in unique if len(other_epoch.get(key, [])) == 1)
    assert changed > 0.9 * len(unique)


def test_dynamic_masking_follows_the_static_rules(dynamic_data):
    from hvd_pretrain.vocab import load_tokenizer

    tok = load_tokenizer(os.path.join(os.path.dirname(dynamic_data), "vocab"))
    masked = mask = 0
    for key, entries in _masks_by_record(dynamic_data, seed=2, epoch=0, shuffle=False).items():
        original = np.frombuffer(key, dtype=np.int32)
        for positions, ids in entries:
            n = int((original != tok.pad_id).sum())
            assert len(positions) <= PRED and all(0 < p < n - 1 for p in positions)
            assert not np.isin(original[positions], [tok.cls_id, tok.sep_id, tok.pad_id]).any()
            masked += len(positions)
            mask += sum(ids[p] == tok.mask_id for p in positions)
    assert masked > 5000 and abs(mask / masked - 0.8) < 0.03


def test_a_corrupt_shard_stops_reading_with_its_name(our_data, tmp_path):
    from hvd_pretrain.data import DataError, checked_iterator

    data_dir, _ = our_data
    files = []
    for index, source in enumerate(list_shards(data_dir)):
        data = bytearray(open(source, "rb").read())
        if index == 1:
            data[len(data) // 2] ^= 0xFF
        path = tmp_path / os.path.basename(source)
        path.write_bytes(bytes(data))
        files.append(str(path))
    ds = make_dataset(files, batch_size=32, max_seq_length=SEQ, max_predictions_per_seq=PRED, shuffle=False,
                      repeat=False)
    with pytest.raises(DataError) as info:
        for _ in checked_iterator(ds, files):
            pass
    assert files[1] in str(info.value) and "corrupt TFRecord" in str(info.value)
