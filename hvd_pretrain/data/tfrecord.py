"""TFRecord files of tf.train.Example records, written and checked without TensorFlow.

Why not tf.io.TFRecordWriter: instance creation runs in a pool of worker
processes, and importing TensorFlow in each costs seconds and hundreds of MB.
The two formats involved are small and fixed:

* tf.train.Example is a protobuf message. Its schema (tensorflow/core/example/
  example.proto + feature.proto) is declared below as a descriptor, and the
  maintained `protobuf` runtime does the encoding; the wire format does not
  depend on where the schema came from.
* A TFRecord is: uint64 length, masked CRC-32C of the length, data, masked
  CRC-32C of the data (little-endian). CRC-32C comes from `google-crc32c`.

The tests read our files with tf.data.TFRecordDataset + tf.io.parse_single_example
and write Google-style records with tf.io.TFRecordWriter, so both directions are
checked against TensorFlow itself.
"""

import os
import struct

import google_crc32c
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from hvd_pretrain.data.errors import DataError

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def masked_crc32c(data):
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def _example_classes():
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


Example = _example_classes()


def encode_example(int_features, float_features=None):
    """Serialize a tf.train.Example from {name: ints} and {name: floats} (lists or NumPy arrays)."""
    example = Example()
    feature = example.features.feature
    for name, values in int_features.items():
        feature[name].int64_list.value.extend(values.tolist() if hasattr(values, "tolist") else values)
    for name, values in (float_features or {}).items():
        feature[name].float_list.value.extend(values.tolist() if hasattr(values, "tolist") else values)
    return example.SerializeToString()


def decode_example(data):
    """{name: list of values} of a serialized tf.train.Example."""
    example = Example()
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


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_SMALL_VARINTS = [_varint(n) for n in range(1 << 14)]


def _length(n):
    return _SMALL_VARINTS[n] if n < 16384 else _varint(n)


def _varint_rows(values):
    """Protobuf varint encoding of each row of a non-negative int matrix -> list of bytes (one per row)."""
    values = np.asarray(values, dtype=np.int64)
    rows, cols = values.shape
    if values.size == 0:
        return [b""] * rows
    if values.max() < 128:  # every value is one byte (masks, segment ids, labels, short positions)
        data = values.astype(np.uint8).tobytes()
        return [data[i:i + cols] for i in range(0, rows * cols, cols)]
    flat = values.ravel()
    sizes = np.ones(flat.size, dtype=np.int64)
    for shift in range(7, 63, 7):
        bigger = flat >= (1 << shift)
        if not bigger.any():
            break
        sizes += bigger
    width = int(sizes.max())
    steps = np.arange(width)
    # byte j of every value (7 bits, high bit set when more bytes follow); keep j < size
    dense = ((flat[:, None] >> (7 * steps)) & 0x7F) | ((sizes[:, None] > steps + 1) << 7)
    data = dense.astype(np.uint8)[steps < sizes[:, None]].tobytes()
    row_ends = np.cumsum(sizes.reshape(rows, cols).sum(axis=1)).tolist()
    row_starts = [0] + row_ends[:-1]
    return [data[a:b] for a, b in zip(row_starts, row_ends)]


class _FeaturePrefixes(dict):
    """Bytes that precede a feature's packed payload in a Features message, by payload length."""

    def __init__(self, name, kind):
        super().__init__()
        self.key = b"\x0a" + _length(len(name)) + name.encode()
        self.kind = kind

    def __missing__(self, size):
        values_len = 1 + len(_length(size)) + size  # Int64List / FloatList: field 1, packed
        feature_len = 1 + len(_length(values_len)) + values_len  # Feature: the oneof field
        entry_len = len(self.key) + 1 + len(_length(feature_len)) + feature_len  # map entry: key 1, value 2
        prefix = (b"\x0a" + _length(entry_len) + self.key + b"\x12" + _length(feature_len)  # Features.feature = 1
                  + self.kind + _length(values_len) + b"\x0a" + _length(size))
        self[size] = prefix
        return prefix


_PREFIXES = {}


def _prefixes(name, kind):
    if (name, kind) not in _PREFIXES:
        _PREFIXES[name, kind] = _FeaturePrefixes(name, kind)
    return _PREFIXES[name, kind]


def encode_examples(int_features, float_features=None):
    """Serialize many tf.train.Examples at once; each feature is a 2-D array, one row per example.

    Equivalent to protobuf's encoding of the same messages (map entries in the given order,
    which parsers ignore), built with NumPy: packed varints for int64 lists, little-endian
    fixed32 for float lists. Int values must be non-negative (ids, masks, positions, labels).
    """
    columns = []
    for name, matrix in int_features.items():
        matrix = np.asarray(matrix)
        if matrix.size and matrix.min() < 0:
            raise ValueError("encode_examples: feature %s has negative values" % name)
        columns.append((_prefixes(name, b"\x1a"), _varint_rows(matrix)))
    for name, matrix in (float_features or {}).items():
        matrix = np.ascontiguousarray(matrix, dtype="<f4")
        columns.append((_prefixes(name, b"\x12"), [row.tobytes() for row in matrix]))
    rows = len(columns[0][1]) if columns else 0
    out = []
    for row in range(rows):
        features = b"".join([prefixes[len(payloads[row])] + payloads[row] for prefixes, payloads in columns])
        out.append(b"\x0a" + _length(len(features)) + features)  # Example.features = 1
    return out
