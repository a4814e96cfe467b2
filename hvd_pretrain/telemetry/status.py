"""The one-line status of a run: state, throughput, progress, ages.

Used by the overview page, `hvd-monitor top`, the report and /metrics, so all
four agree on what "stalled" means.
"""

import math
import time as _time

STALL_AFTER = 120.0      # seconds without a heartbeat before a live run counts as stalled
STALL_INTERVALS = 5      # ... or this many logging intervals, whichever is longer
ALERT_STATES = ("failed", "hung", "stalled")
LIVE_JOB_STATES = ("running", "restarting")
STATES = ("running", "restarting", "stalled", "hung", "failed", "stopped", "finished", "no metrics", "loading")


def _num(value):
    return value if type(value) in (int, float) and math.isfinite(value) else None


# plan.json spellings of the settings the comparison view shows
SETTING_ALIASES = {"precision": ("precision", "dtype_policy", "mixed_precision"), "xla": ("xla", "use_xla", "jit_compile")}


def plan_setting(plan, key):
    """A setting from plan.json, at top level or under "train", by any of its usual names."""
    sections = [plan] + [plan[k] for k in ("train", "precision") if isinstance(plan.get(k), dict)]
    for name in SETTING_ALIASES.get(key, (key,)):
        for section in sections:
            value = section.get(name)
            if value is not None and not isinstance(value, dict):
                return value
    return None


def stall_threshold(run, stall_after=STALL_AFTER):
    interval = run.heartbeat_interval()
    return max(stall_after, STALL_INTERVALS * interval) if interval else stall_after


def finished_training(run):
    last = run.last_record
    if last.get("event") == "end":
        return True
    step, total = _num(run.latest.get("step")), _num(run.latest.get("num_train_steps"))
    return step is not None and total is not None and total > 0 and step >= total


def run_state(run, now, stall_after=STALL_AFTER):
    """(state, why): the supervisor's word when there is one, refined by the heartbeat."""
    job = run.job.content or {}
    job_state = job.get("state") if isinstance(job.get("state"), str) else None
    beat = run.last_heartbeat()
    age = None if beat is None else max(0.0, now - beat)
    stale = age is not None and age > stall_threshold(run, stall_after)
    said = job.get("reason") if isinstance(job.get("reason"), str) and job.get("reason") else None
    if job_state in LIVE_JOB_STATES:
        if stale:
            return "stalled", "job is %s but no heartbeat for %.0f s" % (job_state, age)
        return job_state, "supervisor: %s" % (said if job_state == "restarting" and said else job_state)
    if job_state:
        return job_state, "supervisor: %s" % (said or job_state)
    if run.metrics.n == 0 and not run.latest:
        if run.loading():
            return "loading", "reading metrics.jsonl"
        return "no metrics", "no metrics records yet"
    if finished_training(run):
        return "finished", "reached the last step"
    if stale:
        return "stalled", "no heartbeat for %.0f s" % age
    return "running", "heartbeat %.0f s ago" % (age or 0.0)


def summarize(run, now=None, stall_after=STALL_AFTER):
    """A flat dict describing the run right now (JSON-ready)."""
    now = _time.time() if now is None else now
    with run.lock:
        latest = dict(run.latest)
        rows = run.metrics.n
        events = len(run.events)
    job = run.job.content or {}
    plan = run.plan.content or {}
    state, why = run_state(run, now, stall_after)
    step = _num(latest.get("step"))
    total = _num(latest.get("num_train_steps")) or _num(plan.get("num_train_steps"))
    progress = (100.0 * step / total) if step is not None and total else None
    beat = run.last_heartbeat()
    ckpt = run.last_checkpoint_time
    history = job.get("history") if isinstance(job.get("history"), list) else []
    restarts = _num(job.get("restarts"))
    if restarts is None and history:
        restarts = max(0, len(history) - 1)
    last_exit = None
    if history and isinstance(history[-1], dict):
        last_exit = history[-1].get("exit_code")
    eta = _num(latest.get("eta_sec"))
    if state in ("finished", "failed", "stopped"):
        eta = None
    return {
        "name": run.name,
        "path": run.dir.root,
        "state": state,
        "state_reason": why,
        "alert": state in ALERT_STATES,
        "job": bool(job),
        "job_name": job.get("name") if isinstance(job.get("name"), str) else None,
        "pid": _num(job.get("pid")),
        "restarts": restarts,
        "last_exit_code": last_exit,
        "step": step,
        "num_train_steps": total,
        "progress": progress,
        "global_step_per_sec": _num(latest.get("global_step_per_sec")),
        "examples_per_sec": _num(latest.get("examples_per_sec")),
        "tokens_per_sec": _num(latest.get("tokens_per_sec")),
        "mfu": _num(latest.get("mfu")),
        "loss": _num(latest.get("loss")),
        "lr": _num(latest.get("lr")),
        "loss_scale": _num(latest.get("loss_scale")),
        "eta_sec": eta,
        "world_size": _num(latest.get("world_size")) or _num(plan.get("world_size")),
        "global_batch": _num(latest.get("global_batch")) or _num(plan.get("global_batch")),
        "accum_steps": _num(latest.get("accum_steps")) or _num(plan.get("accum_steps")),
        "precision": plan_setting(plan, "precision"),
        "xla": plan_setting(plan, "xla"),
        "slowest_rank": _num(latest.get("ranks.slowest_rank")),
        "last_heartbeat": beat,
        "heartbeat_age": None if beat is None else max(0.0, now - beat),
        "last_checkpoint": ckpt,
        "checkpoint_age": None if ckpt is None else max(0.0, now - ckpt),
        "rows": rows,
        "events": events,
        "ranks": len(run.ranks),
        "loading": run.loading(),
        "problems": run.problems(),
        "version": run.version,
    }


def fmt_age(seconds):
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return "%ds" % seconds
    if seconds < 7200:
        return "%dm" % (seconds // 60)
    if seconds < 172800:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dd" % (seconds // 86400)


def fmt_num(value, digits=3):
    if value is None:
        return "-"
    a = abs(value)
    if a >= 1e9:
        return "%.2fG" % (value / 1e9)
    if a >= 1e6:
        return "%.2fM" % (value / 1e6)
    if a >= 1e4:
        return "%.1fk" % (value / 1e3)
    if a >= 100:
        return "%.0f" % value
    return "%.*g" % (digits, value)
