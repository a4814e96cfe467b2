"""The trainer against damaged checkpoints, disagreeing flags, non-finite data and empty shards.

Every run is a real `hvd-pretrain` process under a timeout (tests/proc.py kills its
whole process group); each expects one clear line and an exit code, and checks that
nothing on disk was lost.
"""

import glob
import json
import math
import os
import shutil

import pytest

from proc import BIN, run
from test_train_bad_input import _fails_with_one_line, _tree_digest

HVD_PRETRAIN = os.path.join(BIN, "hvd-pretrain")


def _metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _truncate_data_file(checkpoint):
    data = glob.glob(os.path.join(checkpoint, "*.data-*"))[0]
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)


@pytest.mark.timeout(300)
def test_damaged_newest_checkpoint_is_set_aside_and_training_resumes(tmp_path, tiny_run, tiny_flags):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)  # 4 steps of tiny_flags: checkpoints at steps 2 and 4
    ckpts = run_dir / "checkpoints"
    assert sorted(os.listdir(ckpts)) == ["ckpt-000000002", "ckpt-000000004"]
    _truncate_data_file(ckpts / "ckpt-000000004")
    result = run([HVD_PRETRAIN] + tiny_flags(run_dir, steps=6, save_checkpoints_steps=2, keep_checkpoints=5),
                 timeout=200)
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: checkpoint")]
    assert len(warnings) == 1 and "ckpt-000000004" in warnings[0] and "ckpt-000000002" in warnings[0], result.stdout
    assert "resumed from %s at step 2" % (ckpts / "ckpt-000000002") in result.stdout
    names = sorted(os.listdir(ckpts))
    assert "ckpt-000000004.damaged" in names and "ckpt-000000006" in names, names
    resume = [r for r in _metrics(run_dir) if r.get("event") == "resume"]
    assert resume[-1]["step"] == 2
    assert [r for r in _metrics(run_dir) if r.get("event") == "end"][-1]["step"] == 6


@pytest.mark.timeout(300)
def test_every_checkpoint_damaged_stops_with_one_line_and_renames_nothing(tmp_path, tiny_run, tiny_flags):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)  # 4 steps of tiny_flags: checkpoints at steps 2 and 4
    ckpts = run_dir / "checkpoints"
    for path in ckpts.iterdir():
        _truncate_data_file(path)
    before = _tree_digest(ckpts)
    _fails_with_one_line([HVD_PRETRAIN] + tiny_flags(run_dir, steps=6), "every checkpoint", "ckpt-000000004")
    assert _tree_digest(ckpts) == before


@pytest.mark.timeout(150)
def test_max_predictions_flag_that_disagrees_with_the_data(tmp_path, tiny_flags):
    line = _fails_with_one_line([HVD_PRETRAIN] + tiny_flags(tmp_path / "r", max_predictions_per_seq=12),
                                "--max_predictions_per_seq=12", "10")
    assert "rebuild" in line


@pytest.mark.timeout(150)
def test_creation_flag_that_disagrees_with_the_manifest(tmp_path, tiny_flags):
    # the shared shards were made with --dupe_factor=1
    _fails_with_one_line([HVD_PRETRAIN, "--dupe_factor=3"] + tiny_flags(tmp_path / "r"), "--dupe_factor=3", " 1 ")


@pytest.mark.timeout(200)
def test_vocab_that_is_not_the_datas_vocab(tmp_path, tiny_data, tiny_flags):
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.vocab import train_sentencepiece
    with open(default_corpus(), encoding="utf-8") as f:
        (tmp_path / "half.txt").write_text(f.read(600_000), encoding="utf-8")
    other = str(tmp_path / "other_vocab")
    train_sentencepiece([str(tmp_path / "half.txt")], other, 1000)  # same size, other pieces
    _fails_with_one_line([HVD_PRETRAIN, "--vocab_dir=" + other] + tiny_flags(tmp_path / "r"),
                         "--vocab_dir=" + other, "not the vocab")


@pytest.mark.timeout(120)
def test_agreeing_explicit_flags_train(tmp_path, tiny_flags):
    result = run([HVD_PRETRAIN, "--dupe_factor=1", "--num_shards=4"] + tiny_flags(tmp_path / "r", steps=2),
                 timeout=110)
    assert "done: step 2" in result.stdout


def _poisoned_copy(src, dst, stride=1):
    """A copy of a data dir where every `stride`-th record of each shard has a NaN masked_lm_weight."""
    from hvd_pretrain.data import list_shards
    from hvd_pretrain.data.tfrecord import TFRecordWriter, decode_example, encode_example, iter_records
    os.makedirs(dst)
    for path in list_shards(src):
        with TFRecordWriter(os.path.join(dst, os.path.basename(path))) as writer:
            for i, raw in enumerate(iter_records(path)):
                ex = decode_example(raw)
                if i % stride == 0:
                    ex["masked_lm_weights"][0] = math.nan
                ints = {n: v for n, v in ex.items() if n != "masked_lm_weights"}
                writer.write(encode_example(ints, {"masked_lm_weights": ex["masked_lm_weights"]}))
    return str(dst)


@pytest.mark.timeout(200)
def test_data_that_is_always_non_finite_stops_naming_the_data(tmp_path, tiny_data, tiny_flags):
    data = _poisoned_copy(tiny_data["data_dir"], tmp_path / "nan")
    run_dir = tmp_path / "run"
    flags = tiny_flags(run_dir, steps=50, log_every=3, data_dir=data, max_consecutive_skipped_steps=7)
    line = _fails_with_one_line([HVD_PRETRAIN] + flags,
                                "7 consecutive optimizer steps skipped", "the data")
    assert "hvd-data inspect --verify" in line
    rows = _metrics(run_dir)
    windows = [r for r in rows if "loss" in r]
    assert [r["skipped_steps"] for r in windows] == [3, 3, 1]  # visible while it skips, not silent
    assert all(r["step"] == 0 and r["examples_per_sec"] == 0 for r in windows)
    assert rows[-1]["event"] == "stopped" and rows[-1]["reason"] == "non-finite"
    assert not os.listdir(run_dir / "checkpoints")  # nothing saved from a run that never trained


@pytest.mark.timeout(200)
def test_non_finite_records_are_skipped_and_shown_in_their_windows(tmp_path, tiny_data, tiny_flags):
    data = _poisoned_copy(tiny_data["data_dir"], tmp_path / "some", stride=25)  # about half the batches
    run_dir = tmp_path / "run"
    flags = tiny_flags(run_dir, steps=30, log_every=5, data_dir=data, micro_batch_size=16)
    run([HVD_PRETRAIN] + flags, timeout=180)
    windows = [r for r in _metrics(run_dir) if "loss" in r]
    assert sum(r["skipped_steps"] for r in windows) >= 3
    assert all(math.isfinite(r["loss"]) for r in windows)  # a skipped step's loss is not averaged in
    assert [r["step"] for r in windows] == [5, 10, 15, 20, 25, 30]  # windows stay on the step grid


@pytest.mark.timeout(120)
def test_data_with_only_empty_shards_stops_instead_of_waiting(tmp_path, tiny_flags):
    data = tmp_path / "empty"
    data.mkdir()
    for i in range(2):
        (data / ("part-%d.tfrecord" % i)).write_bytes(b"")
    _fails_with_one_line([HVD_PRETRAIN, "--vocab_size=1000"] + tiny_flags(tmp_path / "r", data_dir=data),
                         "every shard of the data is empty", "part-0.tfrecord")


def test_guard_names_the_likely_cause():
    from hvd_pretrain.train.nonfinite import NonFiniteTraining, SkippedStepGuard
    nan, inf = float("nan"), float("inf")
    guard = SkippedStepGuard(3)
    for _ in range(2):
        guard.check(0, {"skipped": True, "loss": nan})
    with pytest.raises(NonFiniteTraining, match="3 consecutive .* the data"):
        guard.check(0, {"skipped": True, "loss": nan})

    guard = SkippedStepGuard(2)
    guard.check(1, {"skipped": False, "loss": 2.0})
    guard.check(1, {"skipped": True, "loss": inf})
    with pytest.raises(NonFiniteTraining, match="the learning rate: the loss became inf after 1 applied"):
        guard.check(1, {"skipped": True, "loss": inf})

    guard = SkippedStepGuard(2, precision="fp16")
    guard.check(5, {"skipped": True, "loss": 3.0, "loss_scale": 2.0})
    guard.check(5, {"skipped": False, "loss": 3.0})  # an applied step resets the count
    guard.check(6, {"skipped": True, "loss": 3.0, "loss_scale": 1.0})
    with pytest.raises(NonFiniteTraining, match="the loss scale: fp16 gradients overflow even at loss scale 1"):
        guard.check(6, {"skipped": True, "loss": 3.0, "loss_scale": 1.0})

    unbounded = SkippedStepGuard(0)
    for _ in range(1000):
        unbounded.check(0, {"skipped": True, "loss": nan})
    assert unbounded.consecutive == 1000


def test_window_counts_only_applied_steps_and_their_loss(tmp_path):
    from hvd_pretrain.rundir import RunDir
    from hvd_pretrain.train.metrics import MetricsLogger
    from hvd_pretrain.train.plan import BatchPlan
    rundir = RunDir(str(tmp_path)).ensure()
    logger = MetricsLogger(rundir, 0, BatchPlan(4, 1, 2, 10, 0, 64), True, printer=lambda *a: None)
    logger.window.add(0.1, 0.0, {"loss": 2.0, "losses": {"mlm": 2.0}, "nonpad_tokens": 100.0})
    logger.window.add(0.1, 0.0, {"loss": float("nan"), "losses": {"mlm": float("nan")}, "skipped": True})
    logger.window.add(0.1, 0.0, {"loss": 4.0, "losses": {"mlm": 4.0}, "nonpad_tokens": 100.0})
    record = logger.log_window(2, 1e-4)
    assert record["skipped_steps"] == 1 and record["loss"] == 3.0 and record["losses"] == {"mlm": 3.0}
    elapsed = 2 * 8 / record["examples_per_sec"]  # 2 applied steps x global batch 8
    assert record["global_step_per_sec"] == pytest.approx(2 / elapsed)
    logger.window.add(0.1, 0.0, {"loss": float("inf"), "losses": {"mlm": float("inf")}, "skipped": True})
    record = logger.log_window(2, 1e-4)
    assert record["loss"] == float("inf") and record["examples_per_sec"] == 0 and "mfu" not in record


@pytest.mark.timeout(60)
def test_damaged_manifest_is_one_line_in_the_dry_run_too(tmp_path, tiny_data):
    data = tmp_path / "data"
    shutil.copytree(tiny_data["data_dir"], data)
    (data / "manifest.json").write_text('{"num_instances": 12, "sha')
    before = _tree_digest(data)
    _fails_with_one_line([HVD_PRETRAIN, "--dry_run", "--data_dir=" + str(data)], "manifest.json", "not valid JSON")
    _fails_with_one_line([HVD_PRETRAIN, "--data_dir=" + str(data), "--run_dir=" + str(tmp_path / "r")],
                         "manifest.json", "not valid JSON")
    assert _tree_digest(data) == before


@pytest.mark.timeout(200)
def test_gpus_that_tensorflow_cannot_see_stop_the_run_unless_allowed(tmp_path, tiny_flags):
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "nvidia-smi").write_text("#!/bin/sh\necho '0, Tesla V100-SXM2-16GB, 535.54.03, 16384, 7.0'\n")
    (stub / "nvidia-smi").chmod(0o755)
    from proc import test_env
    env = test_env(PATH=str(stub) + os.pathsep + test_env()["PATH"])
    result = run([HVD_PRETRAIN] + tiny_flags(tmp_path / "r", steps=2), timeout=150, env=env, check=False)
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1 and "--allow_cpu" in errors[0], result.stdout[-2000:]
    assert not os.path.exists(tmp_path / "r" / "checkpoints")  # refused before anything was written
    allowed = run([HVD_PRETRAIN, "--allow_cpu"] + tiny_flags(tmp_path / "r2", steps=2), timeout=150, env=env)
    assert "done: step 2" in allowed.stdout
