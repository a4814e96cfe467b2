"""Resume after a hard kill, and a graceful stop on SIGTERM."""

import json
import os
import signal
import time

import pytest

from proc import BIN, Background, kill_group, run

pytestmark = pytest.mark.slow  # real training runs: left out of `make test-fast`


def _records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _wait_for(predicate, timeout, what, bg):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if bg.popen.poll() is not None:
            raise AssertionError("trainer exited (%s) before %s:\n%s" % (bg.popen.returncode, what, bg.output()[-4000:]))
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s:\n%s" % (what, bg.output()[-4000:]))


@pytest.mark.timeout(240)
def test_killed_run_resumes_from_its_checkpoint(tmp_path, tiny_flags):
    run_dir = tmp_path / "run"
    # peak_tflops=0: the MFU peak is measured after windows 4 and 8, pauses that keep step 10 out of reach
    # between the step-4 checkpoint and the kill.
    cmd = [os.path.join(BIN, "hvd-pretrain")] + tiny_flags(run_dir, steps=10, log_every=1, save_checkpoints_steps=2,
                                                           peak_tflops=0)
    with Background(cmd, str(tmp_path / "first.log")) as bg:
        _wait_for(lambda: os.path.isfile(run_dir / "checkpoints" / "ckpt-000000004" / "state.json"), 150,
                  "the step-4 checkpoint", bg)
        kill_group(bg.popen)  # SIGKILL: no chance to save anything more
        bg.popen.wait()
    before = [r for r in _records(run_dir / "metrics.jsonl") if "loss" in r]
    killed_at = max(r["step"] for r in before)
    assert 4 <= killed_at < 10

    out = run(cmd, timeout=150).stdout
    events = _records(run_dir / "metrics.jsonl")
    resume = [r for r in events if r.get("event") == "resume"]
    assert len(resume) == 1 and resume[0]["step"] >= 4
    assert "resumed from" in out
    after = [r for r in events[events.index(resume[0]):] if "loss" in r]
    # Continues from the checkpoint's step; never starts over at step 1.
    assert after[0]["step"] == resume[0]["step"] + 1
    assert after[-1]["step"] == 10
    # The learning-rate schedule continues too: the first resumed step uses the schedule's value there.
    lr_by_step = {r["step"]: r["lr"] for r in before}
    if after[0]["step"] in lr_by_step:
        assert after[0]["lr"] == pytest.approx(lr_by_step[after[0]["step"]], rel=1e-6)


@pytest.mark.timeout(240)
def test_sigterm_checkpoints_and_exits_143(tmp_path, tiny_flags):
    run_dir = tmp_path / "run"
    cmd = [os.path.join(BIN, "hvd-pretrain")] + tiny_flags(run_dir, steps=100000, log_every=1,
                                                           save_checkpoints_steps=1000)
    with Background(cmd, str(tmp_path / "log")) as bg:
        _wait_for(lambda: any(r.get("step", 0) >= 3 and "loss" in r for r in _records(run_dir / "metrics.jsonl")),
                  150, "step 3", bg)
        os.kill(bg.popen.pid, signal.SIGTERM)
        rc = bg.wait(60)
    assert rc == 143, bg.output()[-3000:]
    stopped = [r for r in _records(run_dir / "metrics.jsonl") if r.get("event") == "stopped"]
    assert stopped and stopped[0]["signal"] == signal.SIGTERM
    step = stopped[0]["step"]
    assert os.path.isfile(run_dir / "checkpoints" / ("ckpt-%09d" % step) / "state.json")
