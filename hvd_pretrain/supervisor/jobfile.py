"""job.json and the lock that says a job is running.

job.json (written atomically; the supervisor is its only writer while it runs):
  {"name", "state", "pid", "pgid", "restarts", "history": [{"pid", "start", "end",
   "exit_code", "reason"}], "command", "run_dir", ...settings and "error"}

States: running, restarting, hung (briefly, before the restart), stopped, failed,
finished. A job is *active* while its supervisor holds an exclusive flock on
<run dir>/job.lock; the lock vanishes with the process, so a crashed or killed
supervisor never leaves a job looking alive.
"""

import fcntl
import os
import time

from hvd_pretrain.numbered import numbered_key
from hvd_pretrain.rundir import JOB, RunDir, read_json, write_json_atomic

STATES = ("running", "restarting", "hung", "stopped", "failed", "finished")
FINAL_STATES = ("stopped", "failed", "finished")
LOCK_NAME = "job.lock"


def lock_path(run_dir):
    return os.path.join(run_dir, LOCK_NAME)


def try_lock(run_dir):
    """Take the job lock without waiting. Returns an open fd, or None when another process holds it."""
    fd = os.open(lock_path(run_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def lock_with_retry(run_dir, wait_seconds):
    deadline = time.time() + wait_seconds
    while True:
        fd = try_lock(run_dir)
        if fd is not None or time.time() >= deadline:
            return fd
        time.sleep(0.05)


def is_active(run_dir):
    """True while a supervisor holds the job lock of `run_dir`."""
    path = lock_path(run_dir)
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def job_path(run_dir):
    return RunDir(run_dir).job


def load(run_dir):
    """job.json as a dict, or None when there is none."""
    return read_json(job_path(run_dir))


def save(run_dir, job):
    job["updated"] = time.time()
    write_json_atomic(job_path(run_dir), job)


def new_job(name, run_dir, command, settings, previous=None):
    """A fresh job record; history and restart counts of a previous run of the same name are kept."""
    previous = previous or {}
    job = {
        "name": name,
        "run_dir": run_dir,
        "command": list(command),
        "state": "restarting",
        "reason": "starting",
        "pid": None,
        "pgid": None,
        "supervisor_pid": None,
        "restarts": 0,
        "history": list(previous.get("history", [])),
        "error": None,
        "created": previous.get("created", time.time()),
    }
    job.update(settings)
    return job


def list_jobs(root):
    """(name, run_dir) of every directory under `root` that has a job.json, sorted by name with
    numbers compared as numbers (job-2 before job-10)."""
    found = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: numbered_key(e.name))
    except OSError:
        return found
    for entry in entries:
        if entry.is_dir() and os.path.exists(os.path.join(entry.path, JOB)):
            found.append((entry.name, entry.path))
    return found
