"""Reading created TFRecord shards back in tests (no TensorFlow), and finding the record a rank reads early."""

import hashlib
import itertools
import os
import struct

from hvd_pretrain.data import list_shards
from hvd_pretrain.data.tfrecord import decode_example, iter_records


def records(data_dir):
    """Every record of every shard of `data_dir`, decoded to {feature: list}."""
    return [decode_example(r) for f in list_shards(data_dir) for r in iter_records(f)]


def digest(data_dir):
    """{shard file name: SHA-256 of its bytes}."""
    out = {}
    for path in list_shards(data_dir):
        with open(path, "rb") as f:
            out[os.path.basename(path)] = hashlib.sha256(f.read()).hexdigest()
    return out


def masked_multitoken_words(ids, n, masked, tok, segment_starts=()):
    """Assert that every word of the first n tokens is masked entirely or not at all.

    A word ends at [CLS]/[SEP], at a word-start token and at each of `segment_starts`.
    Returns how many masked words have more than one token (so a test can require some).
    """
    multi, word = 0, []
    for pos in list(range(1, n)) + [n]:
        special = pos >= n or ids[pos] in (tok.cls_id, tok.sep_id)
        if word and (special or pos in segment_starts or tok.is_word_start(ids[pos])):
            hits = sum(p in masked for p in word)
            assert hits in (0, len(word)), (word, sorted(masked))
            multi += hits > 1
            word = []
        if not special:
            word.append(pos)
    return multi


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
