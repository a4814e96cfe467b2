"""Fault tests: the real hvd-pretrain under real `horovodrun -np 2`, supervised by hvd-job.

Each test measures what the issue asks for (recovery time, steps lost) from
metrics.jsonl and job.json, prints it, and appends it to
test-artifacts/job_faults.jsonl.
"""

import fcntl
import json
import os
import re
import select
import signal
import subprocess
import termios
import time

import psutil
import pytest

import proc
from hvd_pretrain.supervisor.names import RUN_DIR_ENV
from jobtools import HVD_JOB, JobsHarness

pytestmark = [pytest.mark.horovod, pytest.mark.slow]

CKPT_EVERY = 10
ARTIFACTS = os.path.join(proc.REPO, "test-artifacts", "job_faults.jsonl")
SUPERVISION = ["--poll", "0.2", "--backoff", "1", "--grace", "60", "--hang-grace", "2",
               "--startup-timeout", "240"]


def trainer(steps, prepared):
    return ["horovodrun", "-np", "2", "--gloo", "hvd-pretrain", "--num_train_steps=%d" % steps,
            "--data_dir=%s/data" % prepared, "--vocab_dir=%s/vocab" % prepared,
            "--save_checkpoints_steps=%d" % CKPT_EVERY, "--log_every=1", "--micro_batch_size=4", "--threads=1"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A directory with the vocab/ and data/ hvd-pretrain builds by default (the embedded corpus, an
    8000-piece vocab, seq 128; --dupe_factor=1), built once in this process and shared read-only.

    HVD_PRETRAIN_TEST_PREPARED=DIR reuses a run directory prepared earlier (it must have vocab/ and data/).
    """
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data import DataConfig, create_pretraining_data
    from hvd_pretrain.vocab import train_sentencepiece

    reuse = os.environ.get("HVD_PRETRAIN_TEST_PREPARED")
    if reuse:
        assert os.path.isdir(os.path.join(reuse, "data")) and os.path.isdir(os.path.join(reuse, "vocab")), reuse
        return reuse
    run_dir = str(tmp_path_factory.mktemp("prepared") / "run")
    corpus = [default_corpus()]
    train_sentencepiece(corpus, os.path.join(run_dir, "vocab"), 8000)
    create_pretraining_data(corpus, os.path.join(run_dir, "vocab"), os.path.join(run_dir, "data"),
                            DataConfig(dupe_factor=1), num_workers=1)
    return run_dir


@pytest.fixture
def jobs(tmp_path, prepared):
    harness = JobsHarness(tmp_path / "runs")
    harness.trainer = lambda steps: trainer(steps, prepared)
    yield harness
    harness.close()


def report(test, **figures):
    figures = dict(test=test, **{k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()})
    print("MEASURED", json.dumps(figures))
    os.makedirs(os.path.dirname(ARTIFACTS), exist_ok=True)
    with open(ARTIFACTS, "a") as f:
        f.write(json.dumps(figures) + "\n")


def rank_process(run_dir, rank):
    """The hvd-pretrain process of Horovod rank `rank` of the job in `run_dir`."""
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            env = p.environ()
            if (env.get(RUN_DIR_ENV) == run_dir and env.get("HOROVOD_RANK") == str(rank)
                    and any("hvd-pretrain" in part for part in p.info["cmdline"] or [])
                    and not any(part.endswith("/sh") for part in (p.info["cmdline"] or [])[:1])):
                return p
        except (psutil.Error, OSError):
            continue
    return None


def step_records(jobs, name):
    return [r for r in jobs.metrics(name) if "event" not in r and isinstance(r.get("step"), (int, float))]


def recovery(jobs, name, fault_time, since=0.0):
    """(steps lost, seconds from the fault to the first new step, resume step) from metrics.jsonl."""
    records = [r for r in jobs.metrics(name) if r["time"] > since]
    before = [r["step"] for r in records if r["time"] <= fault_time and "event" not in r]
    after_events = [r for r in records if r["time"] > fault_time and r.get("event") in ("start", "resume")]
    resumed = after_events[0]["step"] if after_events else None
    first_new = next(r for r in records if r["time"] > fault_time and "event" not in r
                     and (resumed is None or r["step"] > resumed))
    if resumed is None:
        resumed = first_new["step"] - 1
    return max(before) - resumed, first_new["time"] - fault_time, resumed


@pytest.mark.timeout(330)
def test_rank_killed_then_rank_hung_both_recover_from_checkpoints(jobs):
    """One run, two faults: kill -9 of rank 1 (crash), later SIGSTOP of rank 1 (hang)."""
    name, steps, stall = "faulty run", 45, 10.0
    jobs.start(name, jobs.trainer(steps), *SUPERVISION, "--stall-timeout", str(stall))
    run_dir = jobs.run_dir(name)

    # 1. A rank killed with SIGKILL: horovodrun fails, the supervisor restarts it, the run resumes.
    jobs.wait_step(name, CKPT_EVERY + 5, 150)
    victim = rank_process(run_dir, 1)
    assert victim is not None, "rank 1 not found"
    victim.send_signal(signal.SIGKILL)
    killed_at = time.time()
    jobs.wait(lambda: len(jobs.job(name).get("history", [])) >= 1, 60, "the crash to be handled", poll=0.2)
    crash = jobs.job(name)["history"][0]
    assert crash["kind"] == "error" and ("137" in crash["reason"] or "SIGKILL" in crash["reason"]), crash

    # 2. A rank stopped with SIGSTOP: no step advances, the supervisor declares a hang within 2x the timeout.
    jobs.wait_step(name, 3 * CKPT_EVERY + 3, 180)
    victim = rank_process(run_dir, 1)
    victim.send_signal(signal.SIGSTOP)
    stopped_at = time.time()
    jobs.wait(lambda: len(jobs.job(name).get("history", [])) >= 2, 4 * stall, "the hang to be handled", poll=0.2)
    hang = jobs.job(name)["history"][1]
    detected_in = hang["end"] - stopped_at
    assert hang["kind"] == "hang" and hang["reason"].startswith("hang: step"), hang
    assert detected_in <= 2 * stall

    job = jobs.wait_state(name, "finished", 180)
    assert job["restarts"] == 2 and [h["kind"] for h in job["history"]] == ["error", "hang", "finished"], job["history"]
    assert max(r["step"] for r in step_records(jobs, name)) == steps
    lost1, recovered1, resumed1 = recovery(jobs, name, killed_at)
    lost2, recovered2, resumed2 = recovery(jobs, name, stopped_at, since=killed_at)
    assert resumed1 == CKPT_EVERY and resumed2 == 3 * CKPT_EVERY
    assert 0 <= lost1 <= CKPT_EVERY and 0 <= lost2 <= CKPT_EVERY
    history = job["history"]
    report("rank_killed", steps_lost=lost1, recovery_s=recovered1, resumed_from=resumed1,
           launcher_exit_after_kill_s=crash["end"] - killed_at, restart_delay_s=history[1]["start"] - crash["end"],
           restart_reason=crash["reason"])
    report("hang_sigstop", stall_timeout_s=stall, detected_and_killed_in_s=detected_in, steps_lost=lost2,
           recovery_s=recovered2, resumed_from=resumed2, restart_delay_s=history[2]["start"] - hang["end"])


@pytest.mark.timeout(60)
def test_config_error_fails_once_and_status_shows_the_error(jobs):
    name = "bad flag"
    jobs.start(name, ["horovodrun", "-np", "2", "--gloo", "hvd-pretrain", "--no_such_flag=3"], *SUPERVISION)
    job = jobs.wait_state(name, "failed", 50)
    assert job["restarts"] == 0 and len(job["history"]) == 1 and job["exit_code"] == 2
    assert "no_such_flag" in job["error"]
    time.sleep(1.5)
    assert len(jobs.job(name)["history"]) == 1
    table = jobs.cli("status", "--runs_dir", jobs.runs_dir, check=True).stdout
    assert "failed" in table and "Unknown command line flag 'no_such_flag'" in table
    detail = jobs.cli("status", name, "--runs_dir", jobs.runs_dir, check=True).stdout
    assert "configuration error (exit 2): not restarting" in detail


def _open_terminal_session(env):
    """bash on a fresh pseudo-terminal, as the controlling process of its own session (a login's shape)."""
    master, slave = os.openpty()

    def become_terminal_owner():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    shell = subprocess.Popen(["bash", "--norc", "--noprofile", "-i"], stdin=slave, stdout=slave, stderr=slave,
                             env=env, start_new_session=True, preexec_fn=become_terminal_owner, cwd=proc.REPO)
    os.close(slave)
    return shell, master


def _read_until(master, needle, timeout):
    buf, deadline = b"", time.time() + timeout
    while time.time() < deadline and needle.encode() not in buf:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                buf += os.read(master, 65536)
            except OSError:
                break
    return buf.decode("utf-8", "replace")


@pytest.mark.timeout(240)
def test_logout_keeps_training_and_stop_checkpoints_with_143(jobs):
    name, steps = "survivor", 100000
    jobs.names.append(name)
    env = dict(jobs.env, PS1="$ ", HISTFILE="/dev/null")
    shell, master = _open_terminal_session(env)
    try:
        command = " ".join([HVD_JOB, "start", name, "--runs_dir", jobs.runs_dir] + SUPERVISION + ["--"]
                           + jobs.trainer(steps))
        os.write(master, ("sleep 1000 & echo control=$!\n" + command + "\n").encode())
        out = _read_until(master, "hvd-job stop", 30)
        assert "started job" in out, out
        control = psutil.Process(int(re.search(r"control=(\d+)", out).group(1)))
        jobs.wait_step(name, 3, 150)
        os.close(master)  # the terminal goes away: the kernel hangs up the session
        os.killpg(shell.pid, signal.SIGHUP)
        hung_up_at = time.time()
        assert shell.wait(10) is not None
        control.wait(10)  # a plain background job of that session died with it
        step_at_hangup = jobs.last_step(name)
        time.sleep(10.5)
        assert jobs.job(name)["state"] == "running"
        later = [r for r in step_records(jobs, name) if r["time"] > hung_up_at + 10]
        assert later and later[-1]["step"] > step_at_hangup
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    stop_started = time.time()
    out = jobs.cli("stop", name, "--runs_dir", jobs.runs_dir, timeout=120, check=True).stdout
    stop_took = time.time() - stop_started
    job = jobs.job(name)
    assert job["state"] == "stopped" and job["exit_code"] == 143 and "143" in out
    assert job["restarts"] == 0 and len(job["history"]) == 1 and job["history"][0]["exit_code"] == 143
    records = jobs.metrics(name)
    final_step = max(r["step"] for r in step_records(jobs, name))
    checkpoint = [r for r in records if r.get("event") == "checkpoint"][-1]
    assert checkpoint["step"] == final_step and checkpoint["time"] >= stop_started
    assert os.path.isdir(checkpoint.get("path", "")) or os.listdir(os.path.join(jobs.run_dir(name), "checkpoints"))
    assert not [p for p in psutil.process_iter() if _env_of(p).get(RUN_DIR_ENV) == jobs.run_dir(name)]
    report("logout_and_stop", steps_after_hangup=later[-1]["step"] - step_at_hangup, seconds_observed=10.5,
           stop_seconds=stop_took, checkpoint_step=checkpoint["step"], steps_lost=final_step - checkpoint["step"])


def _env_of(p):
    try:
        return p.environ()
    except (psutil.Error, OSError):
        return {}
