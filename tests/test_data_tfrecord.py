"""TFRecord framing and tf.train.Example encoding without TensorFlow (checked against protobuf here,
and against TensorFlow itself in test_data_pipeline.py)."""

import numpy as np
import pytest

from hvd_pretrain.data import DataError
from hvd_pretrain.data.example_encoder import RecordEncoder
from hvd_pretrain.data.tfrecord import TFRecordWriter, decode_example, encode_example, iter_records


def _edge_case_features(rows=300, seed=0):
    """Ints of every varint width, rows whose payloads (and so prefixes) and record sizes differ a lot."""
    rng = np.random.default_rng(seed)
    ints = rng.integers(0, 1 << 13, (rows, 64))
    ints[0, :6] = [0, 127, 128, 16383, 16384, (1 << 40) + 5]  # every varint width
    ints[1:100, :] = rng.integers(0, 128, (99, 64))  # one byte each: 64-byte payload
    ids = rng.integers(0, 8000, (rows, 20))
    ids[:50, 10:] = rng.integers(0, 128, (50, 10))  # payload lengths on both sides of 127
    return ({"input_ids": ints, "masked_lm_ids": ids, "next_sentence_labels": rng.integers(0, 2, (rows, 1))},
            {"masked_lm_weights": rng.random((rows, 7)).astype(np.float32)})


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def test_record_encoder_matches_protobuf_and_frames_every_record(tmp_path):
    ints, floats = _edge_case_features()
    encoder = RecordEncoder()
    path = _write(tmp_path / "a.tfrecord", encoder.encode(ints, floats))
    records = list(iter_records(path))  # checks both CRCs of every record
    assert len(records) == 300
    for row, data in enumerate(records):
        values = decode_example(data)
        assert values == {**{k: v[row].tolist() for k, v in ints.items()},
                          **{k: v[row].tolist() for k, v in floats.items()}}
        reference = encode_example({k: v[row] for k, v in ints.items()}, {k: v[row] for k, v in floats.items()})
        assert len(reference) == len(data)  # same fields, same canonical varints; only the map order may differ
    again = _write(tmp_path / "b.tfrecord", encoder.encode(ints, floats))  # byte tables reused: same bytes
    assert open(again, "rb").read() == open(path, "rb").read()
    # records on both sides of 128 bytes, where the Example header grows from 2 to 3 bytes
    mixed = np.random.default_rng(1).integers(1 << 14, 1 << 21, (50, 40))
    mixed[::2] = 5
    path = _write(tmp_path / "c.tfrecord", encoder.encode({"x": mixed}))
    records = list(iter_records(path))
    assert [decode_example(r)["x"] for r in records] == mixed.tolist()
    assert min(map(len, records)) < 128 <= max(map(len, records))
    assert RecordEncoder().encode({"x": np.zeros((0, 3), dtype=np.int64)}) == b""
    with pytest.raises(ValueError, match="negative"):
        encoder.encode({"x": np.array([[-1]])})
    with pytest.raises(ValueError, match="2-D"):
        encoder.encode({"x": np.array([1, 2])})


def test_record_encoder_output_parses_with_tensorflow(tmp_path):
    from hvd_pretrain.tfcompat import tf

    ints, floats = _edge_case_features(seed=1)
    ints["input_ids"][0, 5] = (1 << 62) + 3  # int64 range
    path = _write(tmp_path / "a.tfrecord", RecordEncoder().encode(ints, floats))
    spec = {k: tf.io.FixedLenFeature([v.shape[1]], tf.int64) for k, v in ints.items()}
    spec.update({k: tf.io.FixedLenFeature([v.shape[1]], tf.float32) for k, v in floats.items()})
    rows = 0
    for row, record in enumerate(tf.data.TFRecordDataset(path)):
        parsed = tf.io.parse_single_example(record, spec)
        for name, values in {**ints, **floats}.items():
            assert parsed[name].numpy().tolist() == values[row].tolist(), (row, name)
        rows += 1
    assert rows == 300


def test_writer_is_atomic_and_reader_checks_every_record(tmp_path):
    path = str(tmp_path / "a.tfrecord")
    with pytest.raises(RuntimeError):
        with TFRecordWriter(path) as writer:
            writer.write(b"first")
            raise RuntimeError("interrupted")
    assert not list(tmp_path.iterdir())  # neither the shard nor its temporary file
    with TFRecordWriter(path) as writer:
        for i in range(5):
            writer.write(b"record %d" % i)
    assert list(iter_records(path)) == [b"record %d" % i for i in range(5)]
    data = bytearray(open(path, "rb").read())
    data[3] ^= 1  # damage the first length field
    (tmp_path / "b.tfrecord").write_bytes(bytes(data))
    with pytest.raises(DataError, match="b.tfrecord: bad length checksum of record 0"):
        list(iter_records(str(tmp_path / "b.tfrecord")))
