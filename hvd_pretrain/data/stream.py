"""One rank's records in the exact order of a DataCursor (cursor.py). No TensorFlow.

`rank_stream` yields (key, record) forever: key = (seed, epoch, shard index,
record index) identifies the example (and seeds its dynamic mask), record is
the serialized tf.train.Example. pipeline.make_stream_dataset turns it into
batches.
"""

import os

import numpy as np

from hvd_pretrain.data.cursor import DEFAULT_BLOCK, block_permutation, epoch_layout, places
from hvd_pretrain.data.shards import read_manifest
from hvd_pretrain.data.tfrecord import _FOOTER, _HEADER, masked_crc32c
from hvd_pretrain.errors import DataError

INDEX_EVERY = 1024  # a ShardIndex keeps the byte offset of every 1024th record


class ShardIndex:
    """Seek to record i of a TFRecord file by walking at most INDEX_EVERY - 1 record headers.

    The sparse offsets are built on first use by walking the headers once (no payload is read;
    each header's length checksum is checked). Records returned by `read` are checked against
    their data checksum, as TensorFlow's reader does.
    """

    def __init__(self, path):
        self.path = path
        self.offsets = None
        self.count = None

    def build(self):
        offsets, size, offset, count = [], os.path.getsize(self.path), 0, 0
        with open(self.path, "rb") as f:
            while offset < size:
                if count % INDEX_EVERY == 0:
                    offsets.append(offset)
                f.seek(offset)
                header = f.read(_HEADER.size)
                length, length_crc = _HEADER.unpack(header) if len(header) == _HEADER.size else (0, None)
                if length_crc is None or masked_crc32c(header[:8]) != length_crc:
                    raise DataError("corrupt TFRecord %s: bad or truncated header of record %d at byte %d; re-create"
                                    " the data" % (self.path, count, offset))
                offset += _HEADER.size + length + _FOOTER.size
                count += 1
        if offset != size:
            raise DataError("corrupt TFRecord %s: its last record runs past the end of the file; re-create the data"
                            % self.path)
        self.offsets, self.count = offsets, count
        return self

    def read(self, first, end):
        """Records first .. end-1 (serialized), as a list."""
        found = self.read_records(range(first, end))
        return [found[i] for i in range(first, end)]

    def read_records(self, wanted):
        """{record index: serialized record} for the ascending record indices `wanted`.

        Walks the headers from the indexed offset before the first one; only wanted payloads are
        read, and each is checked against its data checksum.
        """
        if self.offsets is None:
            self.build()
        wanted = list(wanted)
        if not wanted:
            return {}
        if wanted[-1] >= self.count:
            raise DataError("%s has %d records, fewer than the %d its manifest lists; re-create the data"
                            % (self.path, self.count, wanted[-1] + 1))
        out, targets = {}, iter(wanted)
        target = next(targets)
        with open(self.path, "rb") as f:
            start = wanted[0] - wanted[0] % INDEX_EVERY
            f.seek(self.offsets[start // INDEX_EVERY])
            for i in range(start, wanted[-1] + 1):
                length = _HEADER.unpack(f.read(_HEADER.size))[0]
                if i != target:
                    f.seek(length + _FOOTER.size, os.SEEK_CUR)
                    continue
                data = f.read(length)
                footer = f.read(_FOOTER.size)
                if len(data) < length or len(footer) < _FOOTER.size or \
                        masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
                    raise DataError("corrupt TFRecord %s: record %d is truncated or fails its checksum; re-create"
                                    " the data" % (self.path, i))
                out[i] = data
                target = next(targets, None)
        return out


def record_counts(files):
    """Records per shard: from each data dir's manifest.json, else counted by walking the headers."""
    manifests, counts = {}, []
    for path in files:
        directory = os.path.dirname(path)
        if directory not in manifests:
            manifest = read_manifest(directory, missing_ok=True) or {}
            manifests[directory] = {s.get("file"): s.get("instances") for s in manifest.get("shards") or []}
        count = manifests[directory].get(os.path.basename(path))
        counts.append(int(count) if isinstance(count, int) else ShardIndex(path).build().count)
    return counts


def rank_stream(files, counts, cursor, rank, block=DEFAULT_BLOCK, shard_base=0):
    """Yield (key int64[4], record bytes) of rank `rank` from `cursor` on, through all later epochs.

    files: every shard of the data (the cursor's order), counts: their records. Deterministic in
    (files, counts, cursor, rank, block); a rank's examples come in the order of its run's places.
    Keys are (seed, epoch, shard_base + shard index, record index).
    """
    indexes = [ShardIndex(path) for path in files]
    c = cursor
    while True:
        order, starts = epoch_layout(counts, c.seed, c.epoch)
        for lo, hi in places(c.run_of(rank), c.consumed, c.run_length):
            i = lo
            while i < hi:
                b = i // block
                end = min(hi, (b + 1) * block)
                size = min((b + 1) * block, c.examples) - b * block
                positions = b * block + block_permutation(c.seed, c.epoch, b, size)[i - b * block:end - b * block]
                at = np.searchsorted(starts, positions, side="right") - 1
                shards, records = order[at], positions - starts[at]
                found = {}
                for shard in np.unique(shards):
                    found[shard] = indexes[shard].read_records(np.sort(records[shards == shard]).tolist())
                for shard, record in zip(shards.tolist(), records.tolist()):
                    key = np.array([c.seed, c.epoch, shard_base + shard, record], dtype=np.int64)
                    yield key, found[shard][record]
                i = end
        c = c.advanced_epoch()
