"""Test helpers for hvd-job: run the CLI, wait for job states, and never leak a job.

`JobsHarness` remembers every job it started; `close()` stops each one
(`hvd-job stop --grace 2`), then SIGKILLs whatever is left: the supervisor, the
job's process group, and any process whose environment carries the job's
HVD_PRETRAIN_RUN_DIR (horovodrun puts ranks in sessions of their own).
"""

import json
import os
import signal
import sys
import time

import proc
from hvd_pretrain.rundir import read_json, read_jsonl
from hvd_pretrain.supervisor import proctree
from hvd_pretrain.supervisor.names import RUN_DIR_ENV

HVD_JOB = os.path.join(proc.BIN, "hvd-job")
FAKE_TRAINER = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_trainer.py")]
FAKE_LAUNCHER = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_launcher.py")]


class JobsHarness:
    def __init__(self, runs_dir, env=None):
        self.runs_dir = str(runs_dir)
        self.env = env or proc.test_env()
        self.names = []

    def cli(self, *args, timeout=60, check=False, cwd=None):
        return proc.run([HVD_JOB] + list(args), timeout=timeout, env=self.env, cwd=cwd, check=check)

    def start(self, name, command, *options, check=True):
        self.names.append(name)
        return self.cli("start", name, "--runs_dir", self.runs_dir, *options, "--", *command, check=check)

    def run_dir(self, name):
        return os.path.join(self.runs_dir, name)

    def job(self, name):
        return read_json(os.path.join(self.run_dir(name), "job.json")) or {}

    def status(self, name=None):
        args = ["status"] + ([name] if name else []) + ["--runs_dir", self.runs_dir, "--json"]
        return json.loads(self.cli(*args, check=True).stdout)

    def metrics(self, name):
        records, _, _ = read_jsonl(os.path.join(self.run_dir(name), "metrics.jsonl"))
        return records

    def last_step(self, name):
        steps = [r["step"] for r in self.metrics(name) if isinstance(r.get("step"), (int, float))]
        return steps[-1] if steps else None

    def wait(self, predicate, timeout, what, poll=0.1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        raise AssertionError("timed out after %ss waiting for %s; job.json states: %s" % (
            timeout, what, {n: self.job(n).get("state") for n in self.names}))

    def wait_state(self, name, states, timeout):
        states = (states,) if isinstance(states, str) else tuple(states)

        def reached():
            job = self.job(name)
            if job.get("state") in states:
                return job
            if job.get("state") in ("stopped", "failed", "finished"):
                raise AssertionError("job %r ended %s, not %s: %s; error: %s; history: %s" % (
                    name, job["state"], "/".join(states), job.get("reason"), job.get("error"), job.get("history")))
            return None
        return self.wait(reached, timeout, "job %r to reach %s" % (name, "/".join(states)), poll=0.1)

    def wait_step(self, name, step, timeout, poll=0.2):
        """Wait until metrics.jsonl of `name` reaches `step`; fail at once if the job ends first."""
        def reached():
            if (self.last_step(name) or 0) >= step:
                return True
            job = self.job(name)
            if job.get("state") in ("stopped", "failed", "finished"):
                raise AssertionError("job %r ended %s before step %d: %s; error: %s" % (
                    name, job["state"], step, job.get("reason"), job.get("error")))
            return False
        return self.wait(reached, timeout, "job %r to reach step %d" % (name, step), poll=poll)

    def close(self):
        for name in self.names:
            run_dir = self.run_dir(name)
            job = self.job(name)
            if not job:
                continue
            self.cli("stop", name, "--runs_dir", self.runs_dir, "--grace", "2", timeout=40)
            job = self.job(name)
            for pid in (job.get("supervisor_pid"),):
                if pid and proctree.pid_alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            proctree.kill_leftovers(RUN_DIR_ENV, os.path.abspath(run_dir), [job.get("pgid")], grace=0.5)
