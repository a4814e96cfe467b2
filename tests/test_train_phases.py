"""Two-phase training, resuming with another batch plan, and a failing rank's own error shown first."""

import json
import os
import re
import shutil
import signal

import pytest

from datatools import record_read_early

from conftest import tiny_train_flags
from proc import BIN, Background, run
from test_train_resume import _records, _wait_for

pytestmark = pytest.mark.slow  # real training runs: left out of `make test-fast`

HVD_PRETRAIN = os.path.join(BIN, "hvd-pretrain")


def _rank_events(run_dir, rank, event):
    return [r for r in _records(os.path.join(run_dir, "ranks", "%d.jsonl" % rank)) if r.get("event") == event]


@pytest.mark.timeout(300)
def test_phase_two_starts_from_phase_one_weights_and_continues_the_step(tmp_path, tiny_data, tiny_run):
    phase1 = tiny_run  # 4 steps of tiny_train_flags(tiny_data, ...), read only
    phase2, fresh = (str(tmp_path / n) for n in ("phase2", "fresh"))
    out = run([HVD_PRETRAIN, "--init_checkpoint=" + phase1, "--continue_global_step", "--learning_rate=1e-4",
               "--warmup_steps=2"] + tiny_train_flags(tiny_data, phase2, steps=4), timeout=150).stdout
    assert "global step continues from 4; this phase ends at step 8" in out
    # Phase 2 begins with exactly phase 1's final weights ...
    assert _rank_events(phase2, 0, "start")[0]["weights_sha256"] == _rank_events(phase1, 0, "end")[-1]["weights_sha256"]
    windows = [r for r in _records(os.path.join(phase2, "metrics.jsonl")) if "loss" in r]
    assert [w["step"] for w in windows] == [6, 8]
    # ... and its own schedule: warmup 2 of peak 1e-4, counted from the phase's first step.
    assert windows[0]["lr"] == pytest.approx(1e-4, rel=1e-5)
    assert os.path.isdir(os.path.join(phase2, "checkpoints", "ckpt-000000008"))
    # Without --continue_global_step the phase counts from 0.
    out = run([HVD_PRETRAIN, "--init_checkpoint=" + phase1] + tiny_train_flags(tiny_data, fresh, steps=2),
              timeout=150).stdout
    assert "initialised from" in out and "starting at step 0" in out


@pytest.mark.timeout(300)
def test_resume_with_more_accumulation_keeps_examples_and_the_schedule(tmp_path, tiny_data):
    run_dir = str(tmp_path / "run")
    base = [f for f in tiny_train_flags(tiny_data, run_dir, log_every=1, save_checkpoints_steps=1000)
            if not f.startswith("--num_train_steps")] + ["--train_examples=64", "--warmup_steps=0"]
    with Background([HVD_PRETRAIN, "--accum_steps=1"] + base, str(tmp_path / "first.log")) as bg:
        _wait_for(lambda: any(r.get("step", 0) >= 6 and "loss" in r
                              for r in _records(os.path.join(run_dir, "metrics.jsonl"))), 150, "step 6", bg)
        os.kill(bg.popen.pid, signal.SIGTERM)
        assert bg.wait(60) == 143
    first = [r for r in _records(os.path.join(run_dir, "metrics.jsonl")) if "loss" in r]
    stopped_at = first[-1]["step"]
    assert 6 <= stopped_at < 16 and first[-1]["num_train_steps"] == 16  # 64 examples / global batch 4

    out = run([HVD_PRETRAIN, "--accum_steps=2"] + base, timeout=150).stdout
    assert "global batch changed from 4 to 8: examples seen are kept" in out
    events = _records(os.path.join(run_dir, "metrics.jsonl"))
    resume = [r for r in events if r.get("event") == "resume"][-1]
    assert resume["step"] == round(stopped_at * 4 / 8) and resume["global_batch"] == 8
    second = [r for r in events[events.index(resume):] if "loss" in r]
    assert second[-1]["step"] == 8 and second[-1]["num_train_steps"] == 8  # 64 examples / global batch 8
    # Linear decay from 5e-4 over the examples. A record's lr is the one the next update uses:
    # the second run's schedule is the 8-step plan, positioned at the examples already seen ...
    assert second[0]["lr"] == pytest.approx(5e-4 * (1 - (resume["step"] + 1) / 8), rel=1e-5)
    # ... so it picks up where the first run left off: one 8-step update later (plus rounding), not back at 5e-4.
    assert 0 < first[-1]["lr"] - second[0]["lr"] <= 5e-4 / 8 + 5e-4 / 16 + 1e-9


@pytest.mark.horovod
@pytest.mark.timeout(300)
def test_a_failing_rank_shows_its_own_error_first(tmp_path, tiny_data):
    data = tmp_path / "data"
    shutil.copytree(tiny_data["data_dir"], data)
    victim, offset = record_read_early(str(data), rank=1, world=2)
    with open(data / victim, "r+b") as f:
        f.seek(offset + 20)  # inside the record's payload: its checksum fails
        f.write(b"\xff" * 16)
    flags = [f for f in tiny_train_flags(tiny_data, str(tmp_path / "run"), steps=400) if not f.startswith("--data_dir")]
    result = run([os.path.join(BIN, "horovodrun"), "-np", "2", "--gloo", HVD_PRETRAIN, "--data_dir", str(data)]
                 + flags, timeout=280, check=False)
    out = result.stdout
    assert result.returncode != 0
    lines = out.splitlines()
    errors = [line for line in lines if re.match(r"^\[\d+\]<stderr>:error: ", line)]
    assert errors and victim in errors[0] and errors[0].startswith("[1]"), out[-4000:]  # rank 1's own error
    # Rank 0 says one line after it, not a traceback of secondary errors.
    stop = [i for i, line in enumerate(lines) if "rank 0: stopping because another rank failed" in line]
    assert stop and stop[0] > lines.index(errors[0])
    assert not [line for line in lines if re.match(r"^\[\d+\]<stderr>:Traceback", line)], out[-4000:]
    assert "Horovod has been shut down" not in out
