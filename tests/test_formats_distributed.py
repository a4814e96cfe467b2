"""hvd-data create across ranks (horovodrun / mpirun): each rank its chunks, rank 0 the manifest, same bytes."""

import gzip
import json
import os

import pytest

from datatools import digest
from hvd_pretrain.data import DataConfig, create_pretraining_data, read_manifest
from hvd_pretrain.data.distributed import World
from proc import BIN, Background, run
from proc import test_env as proc_env

FLAGS = ["--dupe_factor=1", "--num_shards=5", "--noprogress", "--num_workers=1"]


@pytest.fixture(scope="module")
def inputs(corpus_file, tmp_path_factory):
    """The corpus as three files of three formats (plain text, gzip, JSON Lines), and the single-process shards."""
    root = tmp_path_factory.mktemp("ranks")
    with open(corpus_file, encoding="utf-8") as f:
        documents = [d.split("\n") for d in f.read().rstrip("\n").split("\n\n")]
    third = len(documents) // 3
    parts = [documents[:third], documents[third:2 * third], documents[2 * third:]]
    paths = [str(root / "a.txt"), str(root / "b.txt.gz"), str(root / "c.jsonl")]
    text = ["\n\n".join("\n".join(d) for d in part) + "\n" for part in parts]
    with open(paths[0], "w", encoding="utf-8") as f:
        f.write(text[0])
    with open(paths[1], "wb") as f:
        f.write(gzip.compress(text[1].encode("utf-8")))
    with open(paths[2], "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": d}) + "\n" for d in parts[2])
    return paths


@pytest.fixture(scope="module")
def single(inputs, vocab, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("single"))
    manifest = create_pretraining_data(inputs, vocab, out, DataConfig(dupe_factor=1, num_shards=5))
    return out, manifest


def _command(inputs, vocab, out, *extra):
    return [os.path.join(BIN, "python"), "-m", "hvd_pretrain.cli.data", "create", "--input_files=" + ",".join(inputs),
            "--vocab=" + vocab, "--out=" + out] + FLAGS + list(extra)


def _ranks(tmp_path, commands, launch="launch-1"):
    """Run one process per command as ranks 0..n-1 of one launch (the environment horovodrun gives)."""
    procs = []
    for rank, cmd in enumerate(commands):
        env = proc_env(HOROVOD_RANK=rank, HOROVOD_SIZE=len(commands), HOROVOD_LOCAL_SIZE=len(commands),
                       PMIX_NAMESPACE=launch)
        procs.append(Background(cmd, str(tmp_path / ("rank%d.log" % rank)), env=env))
    try:
        codes = [p.wait(120) for p in procs]
        return codes, [p.output() for p in procs]
    finally:
        for p in procs:
            p.__exit__(None, None, None)


def test_world_comes_from_the_launchers_environment():
    assert World.from_env({}) == World(0, 1, 1, "")
    assert World.from_env({"HOROVOD_RANK": "1", "HOROVOD_SIZE": "4", "HOROVOD_LOCAL_SIZE": "2",
                           "HOROVOD_GLOO_RENDEZVOUS_ADDR": "10.0.0.1", "HOROVOD_GLOO_RENDEZVOUS_PORT": "999"}) == \
        World(1, 4, 2, "10.0.0.1:999")
    world = World.from_env({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "3",
                            "OMPI_COMM_WORLD_LOCAL_SIZE": "3", "PMIX_NAMESPACE": "77"})
    assert world == World(2, 3, 3, "77") and [i for i in range(7) if world.owns(i)] == [2, 5]
    assert World.from_env({"PMI_RANK": "0", "PMI_SIZE": "2"}).size == 2


@pytest.mark.timeout(240)
def test_two_ranks_make_the_single_process_shards_and_rank_0_the_manifest(inputs, vocab, single, tmp_path):
    out = str(tmp_path / "out")
    codes, logs = _ranks(tmp_path, [_command(inputs, vocab, out)] * 2)
    assert codes == [0, 0], logs
    assert digest(out) == digest(single[0]) and len(digest(out)) == 5
    manifest = read_manifest(out)
    assert manifest["run"]["world_size"] == 2 and manifest["run"]["shards_made"] == 3  # rank 0's: chunks 0, 2, 4
    for key in ("num_instances", "documents", "sentence_labels", "shards"):
        assert manifest[key] == single[1][key], key
    assert manifest["input_stats"]["records"] == single[1]["input_stats"]["records"] > 0
    assert "rank 1: made 2 shards (0 already done)" in logs[1] and "wrote %d instances" % manifest["num_instances"] \
        in logs[0]
    assert not os.path.exists(os.path.join(out, ".staging"))
    # A rerun keeps every finished shard.
    codes, logs = _ranks(tmp_path, [_command(inputs, vocab, out)] * 2, launch="launch-2")
    assert codes == [0, 0] and read_manifest(out)["run"]["shards_reused"] == 5 and digest(out) == digest(single[0])
    assert "rank 1: made 0 shards (2 already done)" in logs[1]


@pytest.mark.timeout(240)
def test_a_failing_rank_stops_rank_0_with_its_reason(inputs, vocab, tmp_path):
    out = str(tmp_path / "out")
    good = _command(inputs, vocab, out)
    bad = _command(inputs, str(tmp_path / "no-such-vocab"), out)
    codes, logs = _ranks(tmp_path, [good, bad])
    assert codes == [2, 2], logs
    assert "rank 1 stopped" in logs[0] and "no-such-vocab" in logs[0], logs[0]
    assert not os.path.exists(os.path.join(out, "manifest.json"))


@pytest.mark.horovod
@pytest.mark.timeout(300)
def test_horovodrun_np_2_gives_the_single_process_shards(inputs, vocab, single, tmp_path):
    out = str(tmp_path / "out")
    cmd = [os.path.join(BIN, "horovodrun"), "-np", "2", os.path.join(BIN, "hvd-data"), "create",
           "--input_files=" + ",".join(inputs), "--vocab=" + vocab, "--out=" + out] + FLAGS
    log = run(cmd, timeout=280).stdout
    assert digest(out) == digest(single[0]) and read_manifest(out)["run"]["world_size"] == 2, log
