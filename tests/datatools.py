"""Test helpers for shards: which record a rank reads early, and where it sits in its file."""

import itertools
import os
import struct


def record_read_early(data_dir, rank=0, world=1, nth=5, seed=12345):
    """(shard name, byte offset) of the `nth` record rank `rank` of `world` trains on (--seed=seed).

    No other rank reads that record in the first epoch, so damaging it fails this rank alone.
    """
    from hvd_pretrain.data import list_shards
    from hvd_pretrain.data.cursor import DataCursor
    from hvd_pretrain.data.stream import rank_stream, record_counts

    files = list_shards(data_dir)
    counts = record_counts(files)
    cursor = DataCursor.start(counts, files, seed, world)
    key = list(itertools.islice(rank_stream(files, counts, cursor, rank), nth))[-1][0]
    shard, record = int(key[2]), int(key[3])
    for other in range(world):
        if other != rank:
            seen = {(int(k[2]), int(k[3])) for k, _ in itertools.islice(rank_stream(files, counts, cursor, other),
                                                                        cursor.run_length)}
            assert (shard, record) not in seen
    offset = 0
    with open(files[shard], "rb") as f:
        for _ in range(record):
            f.seek(offset)
            offset += 16 + struct.unpack("<Q", f.read(8))[0]
    return os.path.basename(files[shard]), offset
