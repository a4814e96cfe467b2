"""TFRecord files of tf.train.Example records, written and checked without TensorFlow.

Why not tf.io.TFRecordWriter: instance creation runs in a pool of worker
processes, and importing TensorFlow in each costs seconds and hundreds of MB.
The two formats involved are small and fixed:

* tf.train.Example is a protobuf message. Its schema (tensorflow/core/example/
  example.proto + feature.proto) is declared below as a descriptor, and the
  maintained `protobuf` runtime encodes and decodes single records with it; the
  wire format does not depend on where the schema came from. Data creation
  encodes whole batches with NumPy instead (`example_encoder`); the tests
  check its records against this decoder and against TensorFlow.
* A TFRecord is: uint64 length, masked CRC-32C of the length, data, masked
  CRC-32C of the data (little-endian). CRC-32C comes from `google-crc32c`.

The tests read our files with tf.data.TFRecordDataset + tf.io.parse_single_example
and write Google-style records with tf.io.TFRecordWriter, so both directions are
checked against TensorFlow itself.
"""

import functools
import os
import struct

import google_crc32c

from hvd_pretrain.errors import DataError

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def masked_crc32c(data):
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


@functools.lru_cache(maxsize=None)
def example_class():
    """The tf.train.Example message class (built on first use: instance creation never needs it)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="hvd_pretrain/example.proto", package="tensorflow",
                                               syntax="proto3")

    def message(name, fields, nested=()):
        msg = proto.message_type.add(name=name)
        for field in fields:
            msg.field.add(**field)
        for sub in nested:
            msg.nested_type.add().CopyFrom(sub)
        return msg

    rep = F.LABEL_REPEATED
    message("BytesList", [dict(name="value", number=1, label=rep, type=F.TYPE_BYTES)])
    message("FloatList", [dict(name="value", number=1, label=rep, type=F.TYPE_FLOAT)])
    message("Int64List", [dict(name="value", number=1, label=rep, type=F.TYPE_INT64)])
    feature = message("Feature", [
        dict(name=n, number=i, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE, type_name=".tensorflow." + t, oneof_index=0)
        for i, (n, t) in enumerate((("bytes_list", "BytesList"), ("float_list", "FloatList"),
                                    ("int64_list", "Int64List")), start=1)])
    feature.oneof_decl.add(name="kind")
    entry = descriptor_pb2.DescriptorProto(name="FeatureEntry")
    entry.field.add(name="key", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    entry.field.add(name="value", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                    type_name=".tensorflow.Feature")
    entry.options.map_entry = True
    message("Features", [dict(name="feature", number=1, label=rep, type=F.TYPE_MESSAGE,
                              type_name=".tensorflow.Features.FeatureEntry")], nested=[entry])
    message("Example", [dict(name="features", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                             type_name=".tensorflow.Features")])
    pool = descriptor_pool.DescriptorPool()  # private: no clash with TensorFlow's own registration
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


def encode_example(int_features, float_features=None):
    """Serialize a tf.train.Example from {name: ints} and {name: floats} (lists or NumPy arrays)."""
    example = example_class()()
    feature = example.features.feature
    for name, values in int_features.items():
        feature[name].int64_list.value.extend(values.tolist() if hasattr(values, "tolist") else values)
    for name, values in (float_features or {}).items():
        feature[name].float_list.value.extend(values.tolist() if hasattr(values, "tolist") else values)
    return example.SerializeToString()


def decode_example(data):
    """{name: list of values} of a serialized tf.train.Example."""
    example = example_class()()
    example.ParseFromString(data)
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = list(getattr(feature, kind).value) if kind else []
    return out


class TFRecordWriter:
    """Writes to `path + '.tmp'`; `close()` renames it to `path`, so a shard exists only when complete."""

    def __init__(self, path):
        self.path = path
        self.tmp = path + ".tmp"
        self.file = open(self.tmp, "wb")
        self.count = 0

    def write(self, data):
        self.write_many([data])

    def write_many(self, records):
        parts = []
        for data in records:
            parts.append(_HEADER.pack(len(data), masked_crc32c(struct.pack("<Q", len(data)))))
            parts.append(data)
            parts.append(_FOOTER.pack(masked_crc32c(data)))
        self.file.write(b"".join(parts))
        self.count += len(records)

    def write_framed(self, framed, count):
        """Append `count` records already framed (see example_encoder.RecordEncoder)."""
        self.file.write(framed)
        self.count += count

    def close(self):
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self):
        self.file.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def iter_records(path, check_crc=True):
    """Yield the records of one TFRecord file; a damaged file raises DataError naming it and the offset."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        offset, index = 0, 0
        while offset < size:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise DataError("corrupt TFRecord %s: truncated header of record %d at byte %d; re-create the data"
                                % (path, index, offset))
            length, length_crc = _HEADER.unpack(header)
            if check_crc and masked_crc32c(header[:8]) != length_crc:
                raise DataError("corrupt TFRecord %s: bad length checksum of record %d at byte %d; re-create the data"
                                % (path, index, offset))
            data = f.read(length)
            footer = f.read(_FOOTER.size)
            if len(data) < length or len(footer) < _FOOTER.size:
                raise DataError("corrupt TFRecord %s: record %d at byte %d is truncated; re-create the data"
                                % (path, index, offset))
            if check_crc and masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
                raise DataError("corrupt TFRecord %s: bad data checksum of record %d at byte %d; re-create the data"
                                % (path, index, offset))
            yield data
            offset += _HEADER.size + length + _FOOTER.size
            index += 1
