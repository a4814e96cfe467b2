"""Elastic Horovod: a discovery script takes a slot away and gives it back while training runs."""

import json
import os
import signal
import stat
import time

import numpy as np
import pytest

from conftest import tiny_train_flags
from proc import BIN, REPO, Background, run
from proc import test_env as env_with

pytestmark = pytest.mark.horovod


def _records(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip().endswith("}")]
    except FileNotFoundError:
        return []


# -- units -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, batch, world, accum, global_batch, warns", [
    (16, 4, 2, 2, 16, False),   # launch plan
    (16, 4, 1, 4, 16, False),   # one rank left: twice the accumulation
    (16, 4, 4, 1, 16, False),
    (256, 32, 8, 1, 256, False),
    (256, 32, 3, 3, 288, True),  # 256 / 96 does not divide: nearest accumulation, with a warning
    (256, 32, 16, 1, 512, True),  # more ranks than the target allows: accumulation cannot go below 1
    (24, 4, 5, 1, 20, True),
])
def test_accum_for_world_keeps_the_global_batch_when_it_divides(target, batch, world, accum, global_batch, warns):
    from hvd_pretrain.train.elastic import accum_for_world

    got_accum, got_global, note = accum_for_world(target, batch, world)
    assert (got_accum, got_global) == (accum, global_batch)
    assert (note is not None) == warns
    if warns:
        assert "global batch %d" % global_batch in note and "%d ranks" % world in note


class _OneRank:
    """The Horovod calls TrainingState makes, for a world of one (broadcasts are identities)."""

    def __init__(self):
        self.broadcasts = 0

    def rank(self):
        return 0

    def broadcast_object(self, obj, root_rank=0, name=None):
        return obj

    def broadcast_variables(self, variables, root_rank=0):
        self.broadcasts += 1


def test_training_state_restores_the_last_commit_and_syncs_variables():
    from hvd_pretrain.tfcompat import tf
    from hvd_pretrain.train.elastic import TrainingState

    w = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    step = tf.Variable(3, dtype=tf.int64)
    hvd = _OneRank()
    state = TrainingState(hvd, [w, step], phase_examples=48)
    w.assign_add(tf.ones_like(w))
    step.assign(4)
    state.phase_examples = 64
    state.commit()  # no host updates arrived: commits without raising
    w.assign(tf.zeros_like(w))
    step.assign(5)
    state.phase_examples = 80
    state.restore()  # a failed step rolls back to the commit
    np.testing.assert_array_equal(w.numpy(), np.arange(6, dtype=np.float32).reshape(2, 3) + 1)
    assert int(step.numpy()) == 4 and state.phase_examples == 64
    state.sync()
    assert hvd.broadcasts == 1


SSH_STUB = """#!/bin/sh
# ssh stub: the host is the argument before the command; hosts named down* do not answer.
eval "host=\\${$(($# - 1))}"
case $host in down*) sleep 1; exit 255;; esac
exit 0
"""


@pytest.mark.timeout(30)
def test_discovery_script_lists_the_hostfile_hosts_that_answer(tmp_path):
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    (stub_dir / "ssh").write_text(SSH_STUB)
    (stub_dir / "ssh").chmod(0o755)
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node01 slots=8\n# spare\n\ndown02 slots=8\nnode03 slots=4\nnode04")
    script = os.path.join(REPO, "jobs", "discover_hosts.sh")
    env = env_with(HOSTFILE=str(hostfile), PATH=str(stub_dir) + os.pathsep + env_with()["PATH"])
    out = run(["bash", script], timeout=20, env=env)
    assert out.stdout.split() == ["node01:8", "node03:4", "node04:1"]
    missing = run(["bash", script], timeout=20, env=env_with(HOSTFILE=str(tmp_path / "nope")), check=False)
    assert missing.returncode == 2 and "nope not found" in missing.stdout


# -- horovodrun --------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_elastic_needs_prepared_data(tmp_path):
    out = run([os.path.join(BIN, "hvd-pretrain"), "--elastic", "--run_dir=%s" % (tmp_path / "run"),
               "--num_train_steps=2"], timeout=50, check=False)
    assert out.returncode == 2
    errors = [line for line in out.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--elastic needs --data_dir" in errors[0]
    assert not os.path.exists(tmp_path / "run" / "data")


def _wait_for(job, metrics, predicate, what, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        records = _records(metrics)
        if predicate(records):
            return records
        if job.popen.poll() is not None:
            raise AssertionError("horovodrun exited (%s) while waiting for %s:\n%s"
                                 % (job.popen.returncode, what, job.output()[-6000:]))
        time.sleep(0.2)
    raise AssertionError("no %s after %ss:\n%s" % (what, timeout, job.output()[-6000:]))


def _elastic_job(tmp_path, tiny_data, hosts_text, steps, commit_every, log_every, **extra):
    hosts = tmp_path / "hosts"
    hosts.write_text(hosts_text)
    discover = tmp_path / "discover.sh"
    discover.write_text("#!/bin/sh\ncat %s\n" % hosts)
    discover.chmod(discover.stat().st_mode | stat.S_IEXEC)
    run_dir = tmp_path / "run"
    flags = tiny_train_flags(tiny_data, str(run_dir), steps=steps, accum_steps=2, save_checkpoints_steps=50,
                             warmup_steps=10, learning_rate=1e-3, log_every=log_every, **extra)
    flags += ["--elastic", "--elastic_commit_every=%d" % commit_every]
    cmd = [os.path.join(BIN, "horovodrun"), "-np", "2", "--min-np", "1", "--max-np", "2",
           "--network-interface", "lo", "--host-discovery-script", str(discover),
           os.path.join(BIN, "hvd-pretrain")] + flags
    return hosts, run_dir, Background(cmd, str(tmp_path / "job.log"))


def _check_schedule_and_examples(run_dir, windows, steps):
    """The LR schedule counted optimizer steps straight through; the final checkpoint counts every example."""
    from hvd_pretrain.train.optimization import WarmupPolynomialDecay
    schedule = WarmupPolynomialDecay(1e-3, steps, 10)
    for r in windows:
        assert r["lr"] == pytest.approx(float(schedule(r["step"])), rel=1e-5), r["step"]
    with open(run_dir / "checkpoints" / ("ckpt-%09d" % steps) / "state.json") as f:
        assert json.load(f)["phase_examples"] == steps * 16


def _resets(records, world):
    return [r for r in records if r.get("event") == "elastic_reset" and r["world_size"] == world]


def _surviving_batches(run_dir):
    """The batch records (--record_batch_digests) of the optimizer steps that survived, by (step, rank).

    Each record carries the step it trains and the `entry` into a world that trained it (1 for the
    launch, +1 at every change of world). A new entry starts from the last commit and trains every
    step after it again, so a step recorded in several entries survived only in the latest: records
    of earlier entries for that step belong to steps that were rolled back, whose examples are read
    again legitimately. Within one entry a rank's later record of a step wins.
    """
    records = [r for rank in (0, 1) for r in _records(run_dir / "ranks" / ("%d.batches.jsonl" % rank))]
    latest = {}
    for r in records:
        latest[r["step"]] = max(latest.get(r["step"], 0), r["entry"])
    kept = {(r["step"], r["rank"]): r for r in records if r["entry"] == latest[r["step"]]}
    return kept, len(records) - len(kept)


def _unread_of_the_epoch(run_dir, data_dir, steps):
    """(epoch, keys {(shard, record)}, skipped, examples) the final checkpoint's data cursor has left to
    read in its epoch: every rank's run from `consumed` on, read with the trainer's own reader."""
    from hvd_pretrain.data import list_shards
    from hvd_pretrain.data.cursor import DataCursor
    from hvd_pretrain.data.stream import rank_stream, record_counts
    with open(run_dir / "checkpoints" / ("ckpt-%09d" % steps) / "state.json") as f:
        cursor = DataCursor.from_dict(json.load(f)["data_cursor"])
    files = list_shards(data_dir)
    unread = set()
    for rank in range(cursor.world):
        stream = rank_stream(files, record_counts(files), cursor, rank)
        for _ in range(cursor.run_length - cursor.consumed):
            key, _ = next(stream)
            unread.add((int(key[2]), int(key[3])))
    return cursor.epoch, unread, cursor.skipped, cursor.examples


def _check_every_example_once(run_dir, data_dir, records, steps, worlds):
    """Over the surviving steps every example is read at most once per epoch, and the epoch in progress
    is fully accounted for: read once, left to read by the final data cursor, or counted in its
    `skipped` (the < world examples each deal of the epoch could not place). Returns how many batch
    records were left out as rolled back."""
    kept, dropped = _surviving_batches(run_dir)
    by_step = {}
    for (step, rank), r in kept.items():
        by_step.setdefault(step, []).append(r)
    assert sorted(by_step) == list(range(1, steps + 1))
    for step, rs in by_step.items():  # every rank of the step's world, 16 examples between them
        assert sorted(r["rank"] for r in rs) == list(range(rs[0]["world"])), step
        assert sum(len(r["examples"]) for r in rs) == 16, step
    seen = {}
    for r in kept.values():
        for epoch, shard, record in r["examples"]:
            seen.setdefault(epoch, []).append((shard, record))
    for epoch, keys in seen.items():
        assert len(keys) == len(set(keys)), "an example of epoch %d was read twice" % epoch
    epoch, unread, skipped, total = _unread_of_the_epoch(run_dir, data_dir, steps)
    read = set(seen.get(epoch, ()))
    assert not read & unread, "the cursor would read again an example already read"
    starts = [r for r in records if r.get("event") in ("start", "elastic_reset")]
    # The worlds changed inside this epoch, and its last deal is the one the final cursor holds.
    assert [r["world_size"] for r in starts if r["data_epoch"] == epoch][:len(worlds)] == worlds, starts
    if starts[-1]["data_epoch"] == epoch:
        assert starts[-1]["data_skipped"] == skipped
    print("MEASURED elastic %s: epoch %d of %d examples: %d read once, %d left to read, %d skipped"
          " by the deals; %d rolled-back step records left out (%s)"
          % (" -> ".join(map(str, worlds)), epoch, total, len(read), len(unread), skipped, dropped,
                                  ", ".join("%s: world %d, skipped %d" % (r["event"], r["world_size"],
                                                                          r["data_skipped"]) for r in starts)))
    assert len(read) + len(unread) + skipped == total
    return dropped


@pytest.mark.timeout(300)
def test_slots_go_from_two_to_one_and_back_while_training(tmp_path, tiny_data):
    """The world goes 2 -> 1 -> 2 ranks; the trainer keeps the global batch, the schedule, identical weights on
    every rank, and reads every example of the epoch once (see _check_every_example_once)."""
    steps = 100
    hosts, run_dir, job = _elastic_job(tmp_path, tiny_data, "localhost:2\n", steps, commit_every=2, log_every=2,
                                       record_batch_digests=True)
    metrics = run_dir / "metrics.jsonl"
    with job:
        _wait_for(job, metrics, lambda rs: any("loss" in r and r["step"] >= 6 for r in rs), "step 6", 150)
        hosts.write_text("localhost:1\n")
        records = _wait_for(job, metrics, lambda rs: _resets(rs, 1), "a reset to one rank", 60)
        one_rank_from = _resets(records, 1)[0]["step"]
        _wait_for(job, metrics, lambda rs: any("loss" in r and r["step"] >= one_rank_from + 6 for r in rs),
                  "6 steps on one rank", 60)
        hosts.write_text("localhost:2\n")
        _wait_for(job, metrics, lambda rs: _resets(rs, 2), "a reset back to two ranks", 120)
        assert job.wait(150) == 0, job.output()[-6000:]
        output = job.output()

    records = _records(metrics)
    windows = [r for r in records if "loss" in r]
    # The global batch stayed 16: accumulation went 2 -> 4 -> 2 as the world went 2 -> 1 -> 2.
    assert {r["global_batch"] for r in windows} == {16}
    assert {(r["world_size"], r["accum_steps"]) for r in windows} == {(2, 2), (1, 4)}
    worlds = [r["world_size"] for r in windows]
    assert worlds[0] == 2 and worlds[-1] == 2 and 1 in worlds
    back_at = _resets(records, 2)[0]["step"]
    print("one rank from step %d, two again from step %d of %d" % (one_rank_from, back_at, steps))
    assert one_rank_from < back_at < steps
    assert "elastic: world size is now 1; batch plan: 4 per rank x 4 accumulation x 1 ranks = global batch 16" \
        in output
    # Training continued without losing or repeating a step: one window every 2 steps, up to the end.
    assert [r["step"] for r in windows] == list(range(2, steps + 1, 2))
    _check_schedule_and_examples(run_dir, windows, steps)
    # The worker that joined received rank 0's state, and both ranks ended with identical weights.
    ranks = {rank: _records(run_dir / "ranks" / ("%d.jsonl" % rank)) for rank in (0, 1)}
    joined = {rank: [r for r in rs if r.get("event") == "elastic_reset" and r["step"] == back_at]
              for rank, rs in ranks.items()}
    assert joined[0] and joined[1]
    assert joined[0][-1]["weights_sha256"] == joined[1][-1]["weights_sha256"]
    ends = {rank: [r for r in rs if r.get("event") == "end"] for rank, rs in ranks.items()}
    assert ends[0][-1]["step"] == ends[1][-1]["step"] == steps
    assert ends[0][-1]["weights_sha256"] == ends[1][-1]["weights_sha256"]
    losses = [r["loss"] for r in windows]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3
    _check_every_example_once(run_dir, tiny_data["data_dir"], records, steps, [2, 1, 2])


@pytest.mark.timeout(240)
def test_a_killed_rank_rolls_the_survivor_back_to_the_last_commit(tmp_path, tiny_data):
    # Two host names for this machine: Horovod excludes the host of a failed rank, and the other goes on.
    steps, commit_every = 30, 5
    _, run_dir, job = _elastic_job(tmp_path, tiny_data, "localhost:1\n127.0.0.1:1\n", steps, commit_every,
                                   log_every=1, record_batch_digests=True)
    metrics = run_dir / "metrics.jsonl"
    with job:
        records = _wait_for(job, metrics, lambda rs: any("loss" in r and r["step"] >= 12 for r in rs),
                            "step 12", 150)
        starts = [r for r in _records(run_dir / "ranks" / "1.jsonl") if r.get("event") == "start"]
        os.kill(starts[0]["pid"], signal.SIGKILL)
        killed_after = max(r["step"] for r in _records(metrics) if "loss" in r)
        assert job.wait(150) == 0, job.output()[-6000:]

    records = _records(metrics)
    resets = _resets(records, 1)
    assert len(resets) == 1
    rolled_back_to = resets[0]["step"]
    # The survivor went back to the last commit before the failure and trained on alone.
    assert rolled_back_to % commit_every == 0 and killed_after - commit_every <= rolled_back_to <= killed_after + 1
    after = [r for r in records if "loss" in r and records.index(r) > records.index(resets[0])]
    assert [r["step"] for r in after] == list(range(rolled_back_to + 1, steps + 1))
    assert {(r["world_size"], r["accum_steps"], r["global_batch"]) for r in after} == {(1, 4, 16)}
    # Restored, not merely continued: the step counter, the schedule and the example count are the
    # committed ones (steps trained after the commit would otherwise be counted twice).
    _check_schedule_and_examples(run_dir, after, steps)
    # The steps after the commit were read again by the survivor: only their later reading counts.
    assert _check_every_example_once(run_dir, tiny_data["data_dir"], records, steps, [2, 1]) > 0
