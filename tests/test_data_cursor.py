"""The data cursor: exact resume, and every example once per epoch across world-size changes."""

import collections
import os
import itertools

import pytest

from hvd_pretrain.data.cursor import DataCursor, places, segments
from hvd_pretrain.data.stream import INDEX_EVERY, ShardIndex, rank_stream, record_counts
from hvd_pretrain.data.tfrecord import TFRecordWriter, encode_example
from hvd_pretrain.errors import DataError

COUNTS = [37, 1, 50, 0, 2100, 13]  # a shard larger than the index stride, a one-record and an empty shard


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shards")
    files = []
    for s, n in enumerate(COUNTS):
        path = str(directory / ("part-%d.tfrecord" % s))
        with TFRecordWriter(path) as w:
            w.write_many([encode_example({"id": [s, i]}) for i in range(n)])
        files.append(path)
    return files


def ids(records):
    from hvd_pretrain.data.tfrecord import decode_example
    return [tuple(decode_example(r)["id"]) for r in records]


def take(files, cursor, rank, n, block=64):
    return list(itertools.islice(rank_stream(files, COUNTS, cursor, rank, block=block), n))


def test_shard_index_reads_any_range_and_counts(shards):
    index = ShardIndex(shards[4]).build()
    assert index.count == 2100 and record_counts(shards) == COUNTS
    for first, end in ((0, 3), (INDEX_EVERY - 1, INDEX_EVERY + 2), (2050, 2100)):
        assert ids(index.read(first, end)) == [(4, i) for i in range(first, end)]
    with pytest.raises(DataError, match="fewer than the 2101"):
        index.read(0, 2101)


def test_segments_cover_an_epoch_once_in_a_shard_permutation():
    total = sum(COUNTS)
    seen = [(s, i) for s, a, b in segments([(0, total)], COUNTS, seed=3, epoch=1) for i in range(a, b)]
    assert sorted(seen) == sorted((s, i) for s, n in enumerate(COUNTS) for i in range(n))
    other = [(s, a, b) for s, a, b in segments([(0, total)], COUNTS, seed=3, epoch=2)]
    assert [s for s, _, _ in other] != [s for s, _, _ in segments([(0, total)], COUNTS, seed=3, epoch=1)]
    assert places([(0, 5), (10, 20)], 3, 12) == [(3, 5), (10, 17)]


def test_resume_continues_the_exact_stream(shards):
    start = DataCursor.start(COUNTS, shards, seed=7, world=2)
    for rank in (0, 1):
        straight = take(shards, start, rank, 3000)
        for used in (0, 17, 64, 1000, 1100, 2999):
            resumed = take(shards, start.advanced(used), rank, 3000 - used)
            assert [k.tolist() for k, _ in resumed] == [k.tolist() for k, _ in straight[used:]], used
            assert [r for _, r in resumed] == [r for _, r in straight[used:]]


def test_a_cursor_round_trips_through_json(shards):
    cursor = DataCursor.start(COUNTS, shards, seed=1, world=3).advanced(1234).redealt(2)
    assert DataCursor.from_dict(cursor.to_dict()) == cursor
    assert DataCursor.from_dict({"epoch": 1}) is None


@pytest.mark.parametrize("worlds", [(2, 1, 2), (3, 2), (1, 4, 3)])
def test_world_changes_read_every_example_once_per_epoch(shards, worlds):
    """Each world consumes part of the epoch, then the rest is dealt to the next world."""
    total = sum(COUNTS)
    cursor = DataCursor.start(COUNTS, shards, seed=5, world=worlds[0])
    counted = collections.Counter()
    for n, world in enumerate(worlds):
        cursor = cursor.redealt(world)
        last = n == len(worlds) - 1
        use = cursor.run_length if last else cursor.run_length // 3 + 5
        for rank in range(world):
            for key, _ in take(shards, cursor, rank, use):
                assert key[1] == 0, "crossed into the next epoch"
                counted[(int(key[2]), int(key[3]))] += 1
        cursor = cursor.advanced(use)
    assert cursor.epoch == 1 and cursor.consumed == 0
    assert max(counted.values()) == 1  # nothing twice
    missed = total - len(counted)
    assert 0 <= missed < sum(worlds)
    assert missed == sum_skipped(worlds, shards, total)


def sum_skipped(worlds, shards, total):
    cursor = DataCursor.start(COUNTS, shards, seed=5, world=worlds[0])
    for n, world in enumerate(worlds):
        cursor = cursor.redealt(world)
        skipped = cursor.skipped
        use = cursor.run_length if n == len(worlds) - 1 else cursor.run_length // 3 + 5
        cursor = cursor.advanced(use)
    return skipped


def test_ranks_are_disjoint_and_blocks_are_mixed(shards):
    cursor = DataCursor.start(COUNTS, shards, seed=2, world=2)
    a = [tuple(k[2:]) for k, _ in take(shards, cursor, 0, cursor.run_length)]
    b = [tuple(k[2:]) for k, _ in take(shards, cursor, 1, cursor.run_length)]
    assert not set(a) & set(b) and len(set(a)) == len(a)
    assert a != sorted(a)  # permuted within blocks


def test_damaged_records_are_found_by_their_checksums(shards, tmp_path):
    import shutil
    damaged = str(tmp_path / "damaged.tfrecord")
    shutil.copy(shards[4], damaged)
    with open(damaged, "r+b") as f:
        f.seek(os.path.getsize(damaged) // 2)
        f.write(b"\xff" * 8)
    index = ShardIndex(damaged)
    with pytest.raises(DataError, match="damaged.tfrecord"):
        index.build()
        index.read(0, index.count)
