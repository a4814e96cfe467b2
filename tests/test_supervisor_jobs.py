"""hvd-job with real supervisor processes around a stand-in trainer (tests/fake_trainer.py).

Fast checks of the supervision logic; the same faults with the real trainer under
horovodrun -np 2 are in test_job_faults.py.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import proc
from hvd_pretrain.supervisor import doctor
from jobtools import FAKE_LAUNCHER, FAKE_TRAINER, HVD_JOB, JobsHarness

FAST = ["--poll", "0.1", "--backoff", "0.2", "--grace", "5", "--hang-grace", "1"]


@pytest.fixture
def jobs(tmp_path):
    harness = JobsHarness(tmp_path / "runs")
    yield harness
    harness.close()


@pytest.mark.timeout(60)
def test_crash_restarts_with_backoff_and_resumes(jobs):
    out = jobs.start("crashy", FAKE_TRAINER + ["--num_train_steps", "30", "--crash_at_step", "12"], *FAST).stdout
    assert "hvd-job logs crashy" in out and "train.log" in out
    job = jobs.wait_state("crashy", "finished", 30)
    assert job["restarts"] == 1 and [h["exit_code"] for h in job["history"]] == [1, 0]
    assert job["history"][0]["reason"].startswith("exit code 1") and job["history"][0]["kind"] == "error"
    assert job["history"][1]["first_step"] == 11  # resumed from the checkpoint at step 10
    assert "simulated crash at step 12" in job["error"]
    events = jobs.cli("logs", "crashy", "--runs_dir", jobs.runs_dir, "--supervisor", check=True).stdout
    assert "restart 1/5 in 0.2s" in events


@pytest.mark.timeout(60)
def test_restart_limit_and_exponential_backoff(jobs):
    jobs.start("doomed", ["python", "-c", "import sys; print('ValueError: boom'); sys.exit(3)"],
               "--restarts", "3", "--poll", "0.05", "--backoff", "0.3")
    job = jobs.wait_state("doomed", "failed", 30)
    assert job["restarts"] == 3 and len(job["history"]) == 4 and job["exit_code"] == 1
    assert "no restarts left" in job["reason"] and job["error"] == "ValueError: boom"
    gaps = [b["start"] - a["end"] for a, b in zip(job["history"], job["history"][1:])]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6 and gaps[2] >= 1.2, gaps  # 0.3 * 2**n


@pytest.mark.timeout(60)
def test_config_error_fails_without_restart_and_status_shows_it(jobs):
    jobs.start("typo", FAKE_TRAINER + ["--no_such_flag"], *FAST)
    job = jobs.wait_state("typo", "failed", 20)
    assert job["restarts"] == 0 and len(job["history"]) == 1 and job["exit_code"] == 2
    time.sleep(1.0)
    assert len(jobs.job("typo")["history"]) == 1  # no restart loop
    table = jobs.cli("status", "--runs_dir", jobs.runs_dir, check=True).stdout
    assert "failed" in table and "typo: FATAL Flags parsing error: Unknown command line flag 'no_such_flag'" in table
    missing = jobs.start("missing", ["/no/such/program", "x"], *FAST, check=False)
    assert missing.returncode == 1 and "cannot run '/no/such/program'" in missing.stdout
    assert jobs.job("missing")["state"] == "failed" and jobs.job("missing")["restarts"] == 0


@pytest.mark.timeout(60)
def test_hang_is_detected_killed_and_restarted(jobs):
    stall = 1.5
    jobs.start("stuck", FAKE_TRAINER + ["--num_train_steps", "40", "--hang_at_step", "15"], *FAST,
               "--stall-timeout", str(stall))
    job = jobs.wait_state("stuck", "finished", 40)
    hang = job["history"][0]
    assert hang["kind"] == "hang" and hang["reason"].startswith("hang: step 14 did not advance")
    metrics = jobs.metrics("stuck")
    last_before = max(r["time"] for r in metrics if r["time"] < hang["end"])
    assert hang["end"] - last_before < 2 * stall + 1.0  # detected (and killed) within 2x the stall timeout
    assert job["history"][1]["first_step"] == 11 and jobs.last_step("stuck") == 40  # resumed at 10


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["dead pid", "launcher report"])
def test_a_dead_rank_under_a_lingering_launcher_is_a_crash_not_a_hang(jobs, how):
    """A rank dies, the launcher neither exits nor steps: an error after --rank-exit-grace, then a restart."""
    options = ["--report", "--remote"] if how == "launcher report" else []
    jobs.start("lost", FAKE_LAUNCHER + ["--rank_lives_for", "0.8"] + options, *FAST,
               "--stall-timeout", "30", "--rank-exit-grace", "1.5")
    job = jobs.wait_state("lost", "finished", 40)
    crash = job["history"][0]
    assert crash["kind"] == "error", crash
    if how == "dead pid":
        assert crash["reason"].startswith("rank 1 died (pid "), crash
    else:
        assert crash["reason"].startswith("the launcher reported a failed rank (Exit code: 137)"), crash
        assert crash["exit_code"] == 137
    assert "the launcher had not ended 2s later" in crash["reason"]
    assert crash["end"] - crash["start"] < 20  # not the 30 s stall timeout
    assert job["restarts"] == 1 and job["history"][1]["kind"] == "finished"


@pytest.mark.timeout(60)
def test_stop_checkpoints_and_records_143(jobs):
    jobs.start("halt", FAKE_TRAINER + ["--num_train_steps", "100000", "--step_time", "0.02"], *FAST)
    jobs.wait(lambda: (jobs.last_step("halt") or 0) > 20, 20, "steps")
    out = jobs.cli("stop", "halt", "--runs_dir", jobs.runs_dir, check=True).stdout
    assert "stopped" in out
    job = jobs.job("halt")
    assert job["state"] == "stopped" and job["exit_code"] == 143 and job["history"][-1]["exit_code"] == 143
    ckpt = json.load(open(os.path.join(jobs.run_dir("halt"), "checkpoints", "ckpt.json")))
    assert ckpt["step"] == jobs.last_step("halt") and jobs.metrics("halt")[-1]["event"] == "checkpoint"
    time.sleep(0.5)
    assert jobs.job("halt")["restarts"] == 0
    again = jobs.cli("stop", "halt", "--runs_dir", jobs.runs_dir)
    assert again.returncode == 1 and "not running" in again.stdout


@pytest.mark.timeout(60)
def test_injection_names_and_arguments_are_literal(jobs, tmp_path):
    name = "it's a \"job\"; $(touch pwned1) `touch pwned2`"
    args = ["--print_args", "--num_train_steps", "2", "a b", "'q'", "\"dq\"", "x;touch pwned3", "$(touch pwned4)",
            "`touch pwned5`", "$HOME"]
    command = FAKE_TRAINER + args
    jobs.start(name, command, *FAST)
    job = jobs.wait_state(name, ("failed", "finished"), 20)
    assert job["name"] == name and job["command"] == command
    log = jobs.cli("logs", name, "--runs_dir", jobs.runs_dir, check=True, cwd=str(tmp_path)).stdout
    printed = json.loads(next(line for line in log.splitlines() if line.startswith("ARGV="))[5:])
    assert printed == args
    for where in (tmp_path, proc.REPO, jobs.run_dir(name)):
        assert not [f for f in os.listdir(where) if f.startswith("pwned")]
    for bad in ("a/b", "..", "../escape"):
        res = jobs.cli("start", bad, "--runs_dir", jobs.runs_dir, "--", "true")
        assert res.returncode == 2 and "job name" in res.stdout
    assert not os.path.exists(os.path.join(os.path.dirname(jobs.runs_dir), "escape"))


@pytest.mark.timeout(60)
def test_concurrent_jobs_keep_apart_and_names_are_exclusive(jobs):
    slow = FAKE_TRAINER + ["--num_train_steps", "100000", "--step_time", "0.05"]
    jobs.start("one", slow, *FAST)
    jobs.start("two", slow + ["--save_checkpoints_steps", "3"], *FAST)
    dup = jobs.start("one", slow, *FAST, check=False)
    assert dup.returncode == 1 and "already running" in dup.stdout
    jobs.wait(lambda: (jobs.last_step("one") or 0) > 5 and (jobs.last_step("two") or 0) > 5, 20, "both running")
    one, two = jobs.job("one"), jobs.job("two")
    assert one["pid"] != two["pid"] and one["supervisor_pid"] != two["supervisor_pid"]
    assert one["command"] != two["command"] and len(one["history"]) == len(two["history"]) == 0
    env_one = open("/proc/%d/environ" % one["pid"], "rb").read().split(b"\0")
    assert ("HVD_PRETRAIN_RUN_DIR=" + jobs.run_dir("one")).encode() in env_one
    rows = {r["name"]: r for r in jobs.status()}
    assert rows["one"]["state"] == rows["two"]["state"] == "running"
    jobs.cli("stop", "one", "--runs_dir", jobs.runs_dir, check=True)
    assert jobs.job("one")["state"] == "stopped" and jobs.job("two")["state"] == "running"
    steps = jobs.last_step("two")
    jobs.wait(lambda: jobs.last_step("two") > steps, 10, "job two to keep going")


@pytest.mark.timeout(60)
def test_foreground_mode_usr1_stops_for_requeue(jobs):
    env = proc.test_env()
    cmd = [HVD_JOB, "start", "fg", "--runs_dir", jobs.runs_dir, "--foreground", *FAST, "--"] + FAKE_TRAINER + [
        "--num_train_steps", "100000", "--step_time", "0.02"]
    jobs.names.append("fg")
    with proc.Background(cmd, str(jobs.runs_dir) + "-fg.log", env=env) as bg:
        jobs.wait(lambda: (jobs.last_step("fg") or 0) > 10, 20, "steps")
        os.kill(bg.popen.pid, signal.SIGUSR1)  # what Slurm's --signal=B:USR1@300 does
        assert bg.wait(20) == 128 + signal.SIGUSR1
    job = jobs.job("fg")
    assert job["state"] == "stopped" and job["history"][-1]["exit_code"] == 128 + signal.SIGUSR1


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tmux_session_shows_output_and_killing_it_keeps_the_job(jobs):
    jobs.start("tm", FAKE_TRAINER + ["--num_train_steps", "100000", "--step_time", "0.05", "--print_args"], *FAST,
               "--tmux")
    session = jobs.job("tm")["launcher"] and "hvd-job-tm-"
    jobs.wait(lambda: (jobs.last_step("tm") or 0) > 5, 20, "steps")
    sessions = subprocess.run(["tmux", "list-sessions", "-F", "#S"], capture_output=True, text=True).stdout.split()
    name = next(s for s in sessions if s.startswith(session))
    pane = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout
    assert "ARGV=" in pane
    subprocess.run(["tmux", "kill-session", "-t", name], check=True)
    steps = jobs.last_step("tm")
    jobs.wait(lambda: jobs.last_step("tm") > steps + 20, 15, "steps to keep increasing after kill-session")
    assert jobs.job("tm")["state"] == "running"


@pytest.mark.timeout(60)
def test_logs_follow_ends_with_the_job(jobs):
    jobs.start("fol", FAKE_TRAINER + ["--num_train_steps", "20", "--print_args"], *FAST)
    res = jobs.cli("logs", "fol", "-f", "--runs_dir", jobs.runs_dir, timeout=30, check=True)
    assert "ARGV=" in res.stdout and "job finished" in res.stdout


@pytest.mark.timeout(60)
def test_doctor_cli_reports_each_check(jobs, tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("localhost slots=2\n127.0.0.2 slots=2\n")
    # The horovod check runs `horovodrun --check-build` (10-40 s); it has its own test below.
    res = jobs.cli("doctor", "--runs_dir", jobs.runs_dir, "--hostfile", str(hostfile), "--skip", "horovod", "--json")
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    gpu = {"gpu"} if "gpu" in checks else {"gpus", "nccl", "driver", "gpu-ranks", "nccl-iface", "nccl-ib"}
    assert set(checks) == {"logind", "sighup", "kerberos", "disk", "limits", "mpi", "hostfile"} | gpu
    assert all(c["level"] in ("OK", "WARN", "FAIL") and c["message"] for c in checks.values())
    assert all(c["fix"] for c in checks.values() if c["level"] != "OK")
    assert checks["mpi"]["level"] == ("OK" if shutil.which("mpirun") else "WARN")
    with socket.socket() as s:
        s.settimeout(1)
        sshd = s.connect_ex(("127.0.0.2", 22)) == 0
    if not sshd:  # nothing listens on loopback port 22: the remote host must be reported unreachable
        assert checks["hostfile"]["level"] == "FAIL" and "127.0.0.2" in checks["hostfile"]["message"]
        assert "ssh-copy-id" in checks["hostfile"]["fix"] and res.returncode == 1
    text = jobs.cli("doctor", "--runs_dir", jobs.runs_dir, "--skip", "horovod", "--skip", "gpu").stdout
    assert text.strip().splitlines()[-1].startswith("6 checks:")


@pytest.mark.timeout(200)
@pytest.mark.slow
def test_doctor_reads_the_real_horovod_build(monkeypatch):
    monkeypatch.setenv("PATH", proc.BIN + os.pathsep + os.environ.get("PATH", ""))
    check = doctor.check_horovod()
    assert check.level == "OK", check
    assert "TensorFlow" in check.message and "Gloo" in check.message


SYSTEMD_RUN_STUB = r'''#!/usr/bin/env python3
"""Stand-in for `systemd-run --user`: records its arguments, then starts the command detached
with ONLY the environment given by -E (as a user manager would) in --working-directory."""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "w") as f:
    json.dump(args, f)
env, cwd, i = {}, "/", 0
while i < len(args) and args[i].startswith("-"):
    if args[i] in ("--unit", "--working-directory", "-p", "-E"):
        if args[i] == "-E":
            key, _, value = args[i + 1].partition("=")
            env[key] = value
        elif args[i] == "--working-directory":
            cwd = args[i + 1]
        i += 2
    else:
        i += 1
if os.fork() == 0:
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.chdir(cwd)
    os.execvpe(args[i], args[i:], env)
'''


@pytest.mark.timeout(60)
def test_systemd_launcher_passes_unit_settings_and_environment(tmp_path):
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    stub = stub_dir / "systemd-run"
    stub.write_text(SYSTEMD_RUN_STUB)
    stub.chmod(0o755)
    log = tmp_path / "stub.json"
    env = proc.test_env(STUB_LOG=str(log), PATH=str(stub_dir) + os.pathsep + proc.test_env()["PATH"])
    harness = JobsHarness(tmp_path / "runs", env=env)
    try:
        harness.start("unit job", FAKE_TRAINER + ["--num_train_steps", "15"], *FAST, "--launcher", "systemd")
        job = harness.wait_state("unit job", "finished", 30)
        assert job["launcher"] == "systemd" and harness.last_step("unit job") == 15
        args = json.loads(log.read_text())
        assert args[:4] == ["--user", "--quiet", "--collect", "--unit"] and args[4].startswith("hvd-job-unit_job-")
        assert "KillMode=mixed" in args and "--working-directory" in args
        assert "-E" in args and any(a.startswith("PATH=") for a in args)
        assert args[-4:] == ["-m", "hvd_pretrain.supervisor.supervise", "--run_dir", harness.run_dir("unit job")]
    finally:
        harness.close()


@pytest.mark.timeout(60)
def test_restart_stops_then_starts_the_same_command(jobs):
    command = FAKE_TRAINER + ["--num_train_steps", "100000", "--step_time", "0.02"]
    jobs.start("again", command, *FAST)
    jobs.wait_step("again", 10, 20)
    first = jobs.job("again")
    out = jobs.cli("restart", "again", "--runs_dir", jobs.runs_dir, check=True).stdout
    assert "restarted job again" in out
    job = jobs.job("again")
    assert job["supervisor_pid"] != first["supervisor_pid"] and job["command"] == command
    assert job["state"] == "running" and job["history"][-1]["kind"] == "stopped"
    resumed = job["history"][-1]["last_step"]
    jobs.wait(lambda: [r for r in jobs.metrics("again") if r.get("event") == "resume" and r["step"] == resumed],
              20, "the restarted run to resume from the stop checkpoint")


@pytest.mark.timeout(60)
def test_killed_supervisor_shows_dead_and_stop_cleans_up(jobs):
    jobs.start("orphan", FAKE_TRAINER + ["--num_train_steps", "100000", "--step_time", "0.02"], *FAST)
    jobs.wait_step("orphan", 5, 20)
    job = jobs.job("orphan")
    os.kill(job["supervisor_pid"], signal.SIGKILL)
    jobs.wait(lambda: jobs.status("orphan")["state"] == "dead", 10, "status to notice the supervisor is gone")
    assert "hvd-job restart" in jobs.status("orphan")["reason"]
    refused = jobs.start("orphan", FAKE_TRAINER, *FAST, check=False)  # its trainer is still alive
    assert refused.returncode == 1 and "still alive" in refused.stdout
    jobs.cli("stop", "orphan", "--runs_dir", jobs.runs_dir, "--grace", "5", check=True)
    assert not proc_alive(job["pid"]) and jobs.job("orphan")["state"] == "stopped"
    jobs.start("orphan", FAKE_TRAINER + ["--num_train_steps", "3"], *FAST)
    assert jobs.wait_state("orphan", "finished", 20)["state"] == "finished"


def proc_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
