"""JSON payloads behind the dashboard pages (also embedded in static reports)."""

import statistics
import time
import warnings

import numpy as np

from hvd_pretrain.numbered import numbered_key
from hvd_pretrain.telemetry import probes, scaling, status
from hvd_pretrain.telemetry.series import bucket_means, downsample, is_sorted, to_json_list, window

DEFAULT_POINTS = 1500
MAX_POINTS = 20000
RECENT_WINDOWS = 20      # rank records averaged to name the slowest rank
MAX_RANK_SERIES = 64     # per-rank lines drawn; beyond that only min/median/max


def clamp_points(points):
    try:
        points = int(points)
    except (TypeError, ValueError):
        return DEFAULT_POINTS
    return max(10, min(MAX_POINTS, points))


def overview(store, now=None):
    now = time.time() if now is None else now
    rows = [status.summarize(run, now) for run in store.runs()]
    rows.sort(key=lambda r: (not r["alert"], -(r["last_heartbeat"] or 0), numbered_key(r["name"])))
    return {"now": now, "root": store.root, "runs": rows}


def _plan_view(plan):
    """plan.json for display: the batch plan first, the model as one label, nested scalars flattened."""
    first = ("model", "per_rank_batch", "accum_steps", "world_size", "global_batch", "num_train_steps",
             "warmup_steps", "max_seq_length")
    view = {}
    if plan.get("model") is not None:
        view["model"] = scaling.model_label(plan)
    for key in first[1:]:
        if key in plan:
            view[key] = plan[key]
    for key, value in plan.items():
        if key in view or key == "model":
            continue
        if isinstance(value, (int, float, str, bool)):
            view[key] = value
        elif isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (int, float, str, bool)) and sub not in view:
                    view["%s.%s" % (key, sub)] = v
    return view


def restart_markers(job):
    """Restart and exit markers from the supervisor's history."""
    history = job.get("history") if isinstance(job.get("history"), list) else []
    out = []
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            continue
        start, end = entry.get("start"), entry.get("end")
        if i > 0 and isinstance(start, (int, float)):
            out.append({"time": start, "step": None, "kind": "restart", "label": "restart %d" % i})
        if isinstance(end, (int, float)):
            code = entry.get("exit_code")
            reason = entry.get("reason") or ""
            out.append({"time": end, "step": None, "kind": "exit",
                        "label": ("exit %s %s" % (code, reason)).strip()})
    return out


def run_detail(run, now=None):
    summary = status.summarize(run, now)
    job = run.job.content or {}
    with run.lock:
        events = list(run.events)
        keys = [k for k in run.metrics.keys() if k != "time"]
    events += restart_markers(job)
    events.sort(key=lambda e: e["time"] if isinstance(e.get("time"), (int, float)) else 0)
    history = job.get("history") if isinstance(job.get("history"), list) else []
    return {
        "summary": summary,
        "plan": _plan_view(run.plan.content or {}),
        "job": {k: job.get(k) for k in ("name", "state", "pid", "pgid", "restarts", "command") if k in job},
        "history": [h for h in history if isinstance(h, dict)][-50:],
        "events": events,
        "keys": sorted(keys),
        "ranks": sorted(run.ranks),
        "probes": probes.run_probes(run),  # finetune/*.json: the "Downstream probe" charts
    }


def _float(value):
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def run_series(run, keys=None, points=DEFAULT_POINTS, t0=None, t1=None, x_key="time"):
    """Downsampled metric series of one run over an optional [t0, t1] window of x.

    Results are cached per run version, so several viewers (or a page asking
    again) cost one computation per change of the run.
    """
    points = clamp_points(points)
    t0, t1 = _float(t0), _float(t1)
    cache_key = ("series", tuple(keys) if keys else None, points, t0, t1, x_key)
    with run.lock:
        cached = run.cache.get(cache_key)
        if cached is not None and cached["version"] == run.version:
            return cached
        version, rows = run.version, run.metrics.n
        cols = run.metrics
        wanted = [k for k in (keys or cols.keys()) if k in cols.cols and k != x_key]
        # work on a snapshot: copies cost a few ms and the lock is held only for them
        x = cols.column(x_key)
        idx = window(x, t0, t1)
        ys = {k: cols.column(k) for k in wanted}
    if idx is not None:
        x = x[idx]
        ys = {k: v[idx] for k, v in ys.items()}
    if not is_sorted(x):  # clocks stepped back: draw in time order
        order = np.argsort(x, kind="stable")
        x = x[order]
        ys = {k: v[order] for k, v in ys.items()}
    xd, yd = downsample(x, ys, points)
    result = {"name": run.name, "version": version, "rows": rows, "points": int(len(xd)),
              "x_key": x_key, "x": to_json_list(xd), "series": {k: to_json_list(v) for k, v in yd.items()}}
    with run.lock:
        if len(run.cache) > 16:
            run.cache.clear()
        run.cache[cache_key] = result
    return result


def _rank_arrays(run):
    with run.lock:
        return {r: (log.cols.column("time"), log.cols.column("step_time"),
                    log.cols.column("data_wait"), log.host) for r, log in sorted(run.ranks.items())}


def _recent_mean(values, k=RECENT_WINDOWS):
    tail = values[-k:]
    tail = tail[np.isfinite(tail)]
    return float(tail.mean()) if len(tail) else None


def ranks_view(run, points=600, now=None):
    """The straggler view: per-rank table, slowest rank, min/median/max over time.

    Cached per run version; only the "age" column is recomputed for `now`.
    """
    now = time.time() if now is None else now
    points = clamp_points(points)
    cache_key = ("ranks", points)
    with run.lock:
        cached = run.cache.get(cache_key)
        fresh = cached is not None and cached["version"] == run.version
    if not fresh:
        cached = _ranks_view(run, points)
        with run.lock:
            run.cache[cache_key] = cached
    out = dict(cached)
    out["table"] = [dict(row, age=None if row["last_time"] is None else max(0.0, now - row["last_time"]))
                    for row in cached["table"]]
    return out


def _ranks_view(run, points):
    version = run.version
    arrays = _rank_arrays(run)
    table = []
    for rank, (t, st, dw, host) in arrays.items():
        last_t = t[np.isfinite(t)][-1] if np.isfinite(t).any() else None
        table.append({"rank": rank, "host": host, "records": int(len(t)),
                      "step_time": _recent_mean(st), "data_wait": _recent_mean(dw),
                      "last_step_time": float(st[-1]) if len(st) and np.isfinite(st[-1]) else None,
                      "last_time": None if last_t is None else float(last_t)})
    means = {row["rank"]: row["step_time"] for row in table if row["step_time"] is not None}
    with run.lock:
        reported = run.latest.get("ranks.slowest_rank")
        reported_max = run.latest.get("ranks.step_time.max")
        reported_median = run.latest.get("ranks.step_time.median")
        has_stats = "ranks.step_time.max" in run.metrics.cols
    slowest = None
    if reported is not None:
        # the trainer's own figures for its last straggler window
        slowest = {"rank": int(reported), "source": "trainer", "step_time": reported_max,
                   "vs_median": reported_max / reported_median if reported_max and reported_median else None}
    elif means:
        rank = max(means, key=means.get)
        median = statistics.median(means.values())
        slowest = {"rank": rank, "source": "ranks/*.jsonl", "step_time": means[rank],
                   "vs_median": means[rank] / median if median > 0 else None}
    if slowest is not None:
        rank = slowest["rank"]
        slowest["host"] = arrays[rank][3] if rank in arrays else None
    out = {"version": version, "table": table, "slowest": slowest, "source": None, "x": [], "step_time": {},
           "data_wait": {}, "per_rank": {}}
    if has_stats:
        keys = ["ranks.step_time.%s" % s for s in ("min", "median", "max")]
        keys += ["ranks.data_wait.%s" % s for s in ("min", "median", "max")]
        series = run_series(run, keys=keys, points=points)
        out["source"] = "metrics.jsonl"
        out["x"] = series["x"]
        for s in ("min", "median", "max"):
            out["step_time"][s] = series["series"].get("ranks.step_time." + s, [])
            if "ranks.data_wait." + s in series["series"]:
                out["data_wait"][s] = series["series"]["ranks.data_wait." + s]
    if arrays:
        _from_rank_files(out, arrays, points, fill_stats=not has_stats)
    return out


def _from_rank_files(out, arrays, points, fill_stats):
    """Bucket every rank's records on a common time grid; take min/median/max across ranks."""
    finite = [t[np.isfinite(t)] for t, _, _, _ in arrays.values()]
    finite = [t for t in finite if len(t)]
    if not finite:
        return
    lo = min(float(t.min()) for t in finite)
    hi = max(float(t.max()) for t in finite)
    n = max(len(t) for t in finite)
    buckets = max(1, min(points, n))
    width = (hi - lo) / buckets if hi > lo else 1.0
    centers = lo + width * (np.arange(buckets) + 0.5)
    st = np.vstack([bucket_means(t, v, lo, hi, buckets) for t, v, _, _ in arrays.values()])
    dw = np.vstack([bucket_means(t, v, lo, hi, buckets) for t, _, v, _ in arrays.values()])
    keep = np.isfinite(st).any(axis=0) | np.isfinite(dw).any(axis=0)
    ranks = list(arrays)
    out["grid_x"] = to_json_list(centers[keep])
    out["per_rank"] = {str(r): to_json_list(st[i][keep]) for i, r in enumerate(ranks[:MAX_RANK_SERIES])}
    if fill_stats:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN buckets stay NaN
            out["source"] = "ranks/*.jsonl"
            out["x"] = out["grid_x"]
            for name, mat in (("step_time", st), ("data_wait", dw)):
                m = mat[:, keep]
                out[name] = {"min": to_json_list(np.nanmin(m, axis=0)),
                             "median": to_json_list(np.nanmedian(m, axis=0)),
                             "max": to_json_list(np.nanmax(m, axis=0))}


def compare(store, names, metric="examples_per_sec", x_key="step", points=DEFAULT_POINTS):
    """One metric of several runs, each downsampled on its own x (step or elapsed)."""
    out = {"metric": metric, "x_key": x_key, "runs": {}, "missing": []}
    for name in names:
        run = store.get(name)
        if run is None:
            out["missing"].append(name)
            continue
        series = run_series(run, keys=[metric], points=points, x_key=x_key)
        out["runs"][name] = {"x": series["x"], "y": series["series"].get(metric, []),
                             "summary": status.summarize(run)}
    return out
