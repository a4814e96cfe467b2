"""TFRecord framing and tf.train.Example encoding without TensorFlow (checked against protobuf here,
and against TensorFlow itself in test_data_pipeline.py)."""

import numpy as np
import pytest

from hvd_pretrain.data import DataError
from hvd_pretrain.data.tfrecord import TFRecordWriter, decode_example, encode_example, encode_examples, iter_records


def test_batch_encoder_round_trips_through_protobuf():
    rng = np.random.default_rng(0)
    ints = rng.integers(0, 1 << 15, (300, 64))
    ints[0, :6] = [0, 127, 128, 16383, 16384, (1 << 40) + 5]  # every varint width
    floats = rng.random((300, 7)).astype(np.float32)
    labels = rng.integers(0, 2, (300, 1))
    encoded = encode_examples({"input_ids": ints, "next_sentence_labels": labels}, {"masked_lm_weights": floats})
    for row, data in enumerate(encoded):
        values = decode_example(data)
        assert values == {"input_ids": ints[row].tolist(), "next_sentence_labels": labels[row].tolist(),
                          "masked_lm_weights": floats[row].tolist()}
        single = encode_example({"input_ids": ints[row], "next_sentence_labels": labels[row]},
                                {"masked_lm_weights": floats[row]})
        assert len(single) == len(data) and decode_example(single) == values
    with pytest.raises(ValueError):
        encode_examples({"x": np.array([[-1]])})


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
