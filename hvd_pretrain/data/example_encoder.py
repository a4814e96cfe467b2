"""Many tf.train.Example records at once, framed as TFRecords, built with NumPy (no per-record Python).

Every record of a batch has the same features, each a fixed-length list of
non-negative ints (int64_list) or of floats (float_list). The protobuf wire
format of such an Example is a short byte prefix per feature that depends only
on the feature's name and payload length, followed by the payload: packed
varints for ints, little-endian float32s for floats. A framed record is then
a row of parts: frame header, Example header, (prefix, payload) per feature,
frame footer.

The batch is built as a byte matrix with one record per row and a fixed
column range per part, wide enough for the longest row, plus a boolean matrix
marking the bytes in use (a varint takes 1 to 10 bytes, a prefix varies with
its payload's length). Every part is one slice assignment; one boolean
compression then packs all records back to back. Only the CRC-32C of each
record's data is computed record by record (one C call each).

The bytes are canonical protobuf encoding, map entries in the given order.
Tests parse them with protobuf and with TensorFlow's own parser.
"""

import google_crc32c
import numpy as np

from hvd_pretrain.data.tfrecord import masked_crc32c
from hvd_pretrain.vocab.spm_proto import encode_varint as varint

_INT64_LIST, _FLOAT_LIST = b"\x1a", b"\x12"  # Feature.int64_list = 3, Feature.float_list = 2 (length-delimited)
_FRAME_HEADER, _FRAME_FOOTER = 12, 4  # uint64 length + masked CRC of it; masked CRC of the data
_MASK_DELTA = 0xA282EAD8


def feature_prefix(name, kind, payload_size):
    """Bytes of one Features map entry up to its packed payload (field tags and lengths)."""
    key = b"\x0a" + varint(len(name)) + name.encode()  # map entry key = 1
    values = 1 + len(varint(payload_size)) + payload_size  # Int64List / FloatList: value = 1, packed
    feature = 1 + len(varint(values)) + values  # Feature: the oneof field
    entry = len(key) + 1 + len(varint(feature)) + feature  # map entry: key 1, value 2
    return (b"\x0a" + varint(entry) + key + b"\x12" + varint(feature)  # Features.feature = 1
            + kind + varint(values) + b"\x0a" + varint(payload_size))


class _Part:
    """One part of every record: data [rows, width] and, unless every byte is used, keep [rows, width]
    marking the bytes in use (each row's bytes first, padding after)."""

    def __init__(self, data, keep=None, lengths=None):
        self.data, self.keep = data, keep
        if lengths is None:
            lengths = np.full(data.shape[0], data.shape[1], dtype=np.int64) if keep is None else keep.sum(axis=1)
        self.lengths = lengths


class _ByteTable:
    """Byte strings chosen per row by an int key (a payload length), made once per key."""

    def __init__(self, make):
        self.make = make
        self.cache = {}

    def _get(self, key):
        if key not in self.cache:
            self.cache[key] = np.frombuffer(self.make(key), dtype=np.uint8)
        return self.cache[key]

    def part(self, keys):
        rows = keys.size
        if keys.min() == keys.max():
            string = self._get(int(keys[0]))
            return _Part(np.broadcast_to(string, (rows, string.size)))
        unique, inverse = np.unique(keys, return_inverse=True)
        strings = [self._get(k) for k in unique.tolist()]
        lengths = np.array([s.size for s in strings], dtype=np.int64)
        table = np.zeros((len(strings), int(lengths.max())), dtype=np.uint8)
        for i, s in enumerate(strings):
            table[i, :s.size] = s
        row_lengths = lengths[inverse]
        return _Part(table[inverse], np.arange(table.shape[1])[None, :] < row_lengths[:, None], row_lengths)


def _varint_part(values):
    """Packed varints of each row of a non-negative int matrix: value j of a row in columns
    j*width .. j*width+width-1, of which its first `size` bytes are kept."""
    rows, cols = values.shape
    top = int(values.max()) if values.size else 0
    if top < 128:  # one byte per value: masks, segment ids, labels, short positions
        return _Part(values.astype(np.uint8))
    if top < 1 << 14:  # two bytes at most: token ids of vocabularies up to 16384, as one uint16 each
        values = values.astype(np.uint16)
        long = values >= 128
        words = (values & 0x7F) | (long.astype(np.uint16) << 7) | ((values >> 7) << 8)
        keep = np.empty((rows, cols, 2), dtype=bool)
        keep[:, :, 0] = True
        keep[:, :, 1] = long
        data = words.astype("<u2").view(np.uint8).reshape(rows, 2 * cols)
        return _Part(data, keep.reshape(rows, 2 * cols), cols + long.sum(axis=1, dtype=np.int64))
    values = values.astype(np.uint64 if top >> 32 else np.uint32, copy=False)
    width = (top.bit_length() + 6) // 7
    sizes = np.ones(values.shape, dtype=np.uint8)
    for j in range(1, width):
        sizes += values >= (1 << (7 * j))
    data = np.empty((rows, cols, width), dtype=np.uint8)
    for j in range(width):
        data[:, :, j] = ((values >> (7 * j)) & 0x7F) | ((sizes > j + 1).astype(values.dtype) << 7)
    keep = sizes[:, :, None] > np.arange(width, dtype=np.uint8)
    return _Part(data.reshape(rows, cols * width), keep.reshape(rows, cols * width), sizes.sum(axis=1, dtype=np.int64))


class RecordEncoder:
    """Encodes batches of Examples into framed TFRecord bytes; keeps its byte tables between batches."""

    def __init__(self):
        self._prefixes = {}
        self._example_headers = _ByteTable(lambda size: b"\x0a" + varint(size))  # Example.features = 1
        self._length_crcs = {}

    def _prefix_part(self, name, kind, payload_lengths):
        if (name, kind) not in self._prefixes:
            self._prefixes[name, kind] = _ByteTable(lambda size: feature_prefix(name, kind, size))
        return self._prefixes[name, kind].part(payload_lengths)

    def encode(self, int_features, float_features=None):
        """{name: [rows, n] non-negative ints}, {name: [rows, n] floats} -> the TFRecord bytes of all rows."""
        matrices = {**int_features, **(float_features or {})}
        if not matrices or not len(next(iter(matrices.values()))):
            return b""
        parts = []  # prefix, payload, prefix, payload, ...
        for name, matrix in int_features.items():
            values = _matrix(name, matrix)
            if values.size and values.min() < 0:
                raise ValueError("encode: feature %s has negative values" % name)
            payload = _varint_part(values)
            parts += [self._prefix_part(name, _INT64_LIST, payload.lengths), payload]
        for name, matrix in (float_features or {}).items():
            values = np.ascontiguousarray(_matrix(name, matrix), dtype="<f4")
            payload = _Part(values.view(np.uint8).reshape(values.shape[0], -1))
            parts += [self._prefix_part(name, _FLOAT_LIST, payload.lengths), payload]
        rows = parts[0].lengths.size
        features_size = sum(part.lengths for part in parts)
        header = self._example_headers.part(features_size)
        data_size = header.lengths + features_size
        parts = [_Part(self._frame_headers(data_size)), header] + parts
        parts.append(_Part(np.zeros((rows, _FRAME_FOOTER), dtype=np.uint8)))  # the CRC, once the data is known
        width = sum(part.data.shape[1] for part in parts)
        records = np.empty((rows, width), dtype=np.uint8)
        keep = np.ones((rows, width), dtype=bool)
        column = 0
        for part in parts:
            records[:, column:column + part.data.shape[1]] = part.data
            if part.keep is not None:
                keep[:, column:column + part.data.shape[1]] = part.keep
            column += part.data.shape[1]
        packed = records[keep]
        record_size = _FRAME_HEADER + data_size + _FRAME_FOOTER
        data_start = np.cumsum(record_size) - record_size + _FRAME_HEADER
        unframed = packed.tobytes()  # google_crc32c takes bytes (a copy costs far less than a call per record)
        crcs = np.fromiter((google_crc32c.value(unframed[a:a + n])
                            for a, n in zip(data_start.tolist(), data_size.tolist())), dtype=np.uint64, count=rows)
        footer = _masked(crcs).astype("<u4").view(np.uint8).reshape(rows, _FRAME_FOOTER)
        packed[(data_start + data_size)[:, None] + np.arange(_FRAME_FOOTER)] = footer
        return packed.tobytes()

    def _frame_headers(self, data_size):
        """[rows, 12] bytes: little-endian uint64 length and the masked CRC-32C of those 8 bytes."""
        crcs = []
        for n in data_size.tolist():
            if n not in self._length_crcs:
                self._length_crcs[n] = masked_crc32c(n.to_bytes(8, "little"))
            crcs.append(self._length_crcs[n])
        return np.concatenate([data_size.astype("<u8").view(np.uint8).reshape(-1, 8),
                               np.array(crcs, dtype="<u4").view(np.uint8).reshape(-1, 4)], axis=1)


def _matrix(name, matrix):
    values = np.asarray(matrix)
    if values.ndim != 2:
        raise ValueError("encode: feature %s must be a 2-D array, one row per record" % name)
    return values


def _masked(crcs):
    """TFRecord's masked CRC, for a uint64 array of CRC-32C values."""
    return ((((crcs >> 15) | (crcs << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF
