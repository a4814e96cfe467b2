"""Status of jobs and stopping them (the read side of job.json and metrics.jsonl)."""

import os
import signal
import time

from hvd_pretrain.rundir import TRAIN_LOG, RunDir, tail_jsonl, write_json_atomic
from hvd_pretrain.supervisor import jobfile, proctree
from hvd_pretrain.supervisor.names import RUN_DIR_ENV
from hvd_pretrain.errors import JobError

LIVE_STATES = ("running", "restarting", "hung")


def human_age(seconds):
    """12s, 4m05s, 3h04m, 2d05h; '-' when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    if seconds < 86400:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dd%02dh" % (seconds // 86400, seconds % 86400 // 3600)


def newest_checkpoint_time(checkpoints_dir):
    """mtime of the newest entry in the checkpoints directory (rank 0 writes them atomically), or None."""
    newest = None
    try:
        for entry in os.scandir(checkpoints_dir):
            if entry.name.startswith("."):
                continue
            mtime = entry.stat().st_mtime
            newest = mtime if newest is None or mtime > newest else newest
    except OSError:
        return None
    return newest


def job_status(name, run_dir, now=None):
    """One job's status as a flat dict (what `hvd-job status` prints and `--json` returns)."""
    now = now if now is not None else time.time()
    job = jobfile.load(run_dir) or {}
    rundir = RunDir(run_dir)
    active = jobfile.is_active(run_dir)
    state = job.get("state", "unknown")
    reason = job.get("reason")
    if not active and state in LIVE_STATES:
        state = "dead"
        reason = "the supervisor is gone (killed, or the machine rebooted); `hvd-job restart` resumes the run"
    last = tail_jsonl(rundir.metrics) or {}
    ckpt = newest_checkpoint_time(rundir.checkpoints)
    running = state == "running" and active
    return {
        "name": job.get("name", name), "run_dir": run_dir, "state": state, "active": active, "reason": reason,
        "pid": job.get("pid") if running else None, "supervisor_pid": job.get("supervisor_pid") if active else None,
        "uptime": now - job["attempt_started"] if running and job.get("attempt_started") else None,
        "restarts": job.get("restarts", 0), "max_restarts": job.get("max_restarts"),
        "step": last.get("step"), "num_train_steps": last.get("num_train_steps"),
        "step_per_sec": last.get("global_step_per_sec"), "eta_sec": last.get("eta_sec") if running else None,
        "checkpoint_age": now - ckpt if ckpt else None,
        "heartbeat_age": now - last["time"] if isinstance(last.get("time"), (int, float)) else None,
        "exit_code": job.get("exit_code"), "error": job.get("error"), "launcher": job.get("launcher"),
        "command": job.get("command"), "history": job.get("history", []),
    }


COLUMNS = (("NAME", "name"), ("STATE", "state"), ("PID", "pid"), ("UPTIME", "uptime"), ("RESTARTS", "restarts"),
           ("STEP", "step"), ("STEP/S", "step_per_sec"), ("ETA", "eta_sec"), ("CKPT AGE", "checkpoint_age"),
           ("HEARTBEAT", "heartbeat_age"))


def _cell(key, row):
    value = row.get(key)
    if key in ("uptime", "eta_sec", "checkpoint_age", "heartbeat_age"):
        return human_age(value)
    if value is None:
        return "-"
    if key == "step_per_sec":
        return "%.3g" % value
    if key == "step" and row.get("num_train_steps"):
        return "%s/%s" % (value, row["num_train_steps"])
    if key == "restarts" and row.get("max_restarts") is not None:
        return "%s/%s" % (value, row["max_restarts"])
    return str(value)


def format_table(rows):
    cells = [[title for title, _ in COLUMNS]] + [[_cell(key, row) for _, key in COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    for row in rows:
        if row["state"] in ("failed", "dead", "hung", "restarting") and (row.get("error") or row.get("reason")):
            lines.append("%s: %s" % (row["name"], row.get("error") or row.get("reason")))
    return "\n".join(lines)


def format_detail(row, history=5):
    lines = ["%-15s %s" % (title, _cell(key, row)) for title, key in COLUMNS]
    lines += ["%-15s %s" % ("REASON", row.get("reason") or "-"),
              "%-15s %s" % ("ERROR", row.get("error") or "-"),
              "%-15s %s" % ("EXIT CODE", "-" if row.get("exit_code") is None else row["exit_code"]),
              "%-15s %s" % ("LAUNCHER", row.get("launcher") or "-"),
              "%-15s %s" % ("RUN DIR", row["run_dir"]),
              "%-15s %s" % ("LOG", RunDir(row["run_dir"]).log(TRAIN_LOG))]
    past = row.get("history", [])[-history:]
    if past:
        lines.append("HISTORY (last %d of %d attempts)" % (len(past), len(row["history"])))
        for item in past:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(item["start"])) if item.get("start") else "-"
            lines.append("  %s UTC  pid %-7s exit %-5s %s" % (started, item.get("pid"), item.get("exit_code"),
                                                           item.get("reason")))
    return "\n".join(lines)


class StopError(JobError):
    """A job that cannot be stopped as asked (one-line message; exit code 1)."""

    exit_code = 1


def stop(run_dir, grace=None, extra_wait=15.0):
    """Stop a job: the supervisor forwards SIGTERM (ranks first, then the process groups), the trainer
    checkpoints and exits; SIGKILL after the grace period. Returns the final job.json."""
    job = jobfile.load(run_dir)
    if not job:
        raise StopError("no job in %s (no job.json)" % run_dir)
    if not jobfile.is_active(run_dir):
        leftovers = proctree.processes_with_env(RUN_DIR_ENV, run_dir)
        if not leftovers:
            raise StopError("job %r is not running (state %s)" % (job.get("name"), job.get("state")))
        proctree.kill_leftovers(RUN_DIR_ENV, run_dir, [job.get("pgid")], grace=grace if grace is not None else 10)
        job.update(state="stopped", reason="stopped by hvd-job stop; the supervisor was already gone", pid=None)
        jobfile.save(run_dir, job)
        return job
    if grace is not None:
        write_json_atomic(RunDir(run_dir).stop_request, {"grace": grace, "time": time.time()})
    effective = grace if grace is not None else job.get("grace", 120)
    supervisor = job.get("supervisor_pid")
    try:
        os.kill(supervisor, signal.SIGTERM)
    except (ProcessLookupError, TypeError):
        pass
    deadline = time.time() + effective + extra_wait
    while time.time() < deadline:
        if not jobfile.is_active(run_dir):
            return jobfile.load(run_dir)
        time.sleep(0.1)
    proctree.kill_leftovers(RUN_DIR_ENV, run_dir, [job.get("pgid")], grace=1.0)
    try:
        os.kill(supervisor, signal.SIGKILL)
    except (ProcessLookupError, TypeError):
        pass
    job = jobfile.load(run_dir) or job
    job.update(state="stopped", pid=None, reason="the supervisor did not finish within %.0fs; SIGKILL sent"
               % (effective + extra_wait))
    jobfile.save(run_dir, job)
    return job
