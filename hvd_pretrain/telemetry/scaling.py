"""Weak-scaling efficiency across runs of the same model at different world sizes.

    efficiency(N) = examples_per_sec(N) / (N / N0 * examples_per_sec(N0))

N0 is the smallest world size in the group. A run's throughput is its steady
state: the median examples/sec over records past the first `WARMUP_FRACTION`
of its steps (compilation and the first allreduces are slow) and outside
start/resume windows. When several runs share N0, the baseline is their mean.
Runs are grouped by model, sequence length and per-rank batch, which is what
weak scaling holds fixed.
"""

import hashlib
import json

import numpy as np

from hvd_pretrain.telemetry.status import plan_setting

WARMUP_FRACTION = 0.1


def model_label(plan):
    """A short name for the model in plan.json: family, preset and shape when known."""
    model = plan.get("model")
    if isinstance(model, str):
        return model
    if not isinstance(model, dict):
        return "unknown model"
    words = [str(model[k]) for k in ("family", "name", "preset", "type") if isinstance(model.get(k), str)]
    hidden = model.get("hidden_size")
    layers = model.get("num_layers", model.get("num_hidden_layers"))
    if hidden and layers:
        words.append("%sx%s" % (layers, hidden))
    if words:
        return " ".join(words)
    return "model-" + hashlib.sha1(json.dumps(model, sort_keys=True).encode()).hexdigest()[:8]


def steady_examples_per_sec(run):
    """Median examples/sec after warm-up, or None when the run has no such records."""
    with run.lock:
        eps = run.metrics.column("examples_per_sec")
        steps = run.metrics.column("step")
    finite = np.isfinite(eps)
    if not finite.any():
        return None
    if np.isfinite(steps).any():
        cut = np.nanmax(steps) * WARMUP_FRACTION
        keep = finite & (steps > cut)
        if keep.any():
            finite = keep
    return float(np.median(eps[finite]))


def group_key(run):
    plan = run.plan.content or {}
    latest = run.latest
    seq = plan.get("max_seq_length", latest.get("max_seq_length"))
    per_rank = plan.get("per_rank_batch")
    if per_rank is None:
        gb, ws, acc = latest.get("global_batch"), latest.get("world_size"), latest.get("accum_steps") or 1
        if gb and ws:
            per_rank = int(gb // (ws * acc))
    return model_label(plan), seq, per_rank


def world_size(run):
    plan = run.plan.content or {}
    ws = run.latest.get("world_size", plan.get("world_size"))
    return int(ws) if isinstance(ws, (int, float)) and ws > 0 else None


def efficiency_table(entries):
    """Rows for entries of (name, group, world_size, examples_per_sec, extra).

    Pure arithmetic, so it can be tested without any run directory.
    """
    groups = {}
    for entry in entries:
        name, group, ws, eps = entry[:4]
        if ws is None or eps is None:
            continue
        groups.setdefault(group, []).append(entry)
    rows = []
    for group, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        n0 = min(m[2] for m in members)
        base = [m[3] for m in members if m[2] == n0]
        base_eps = sum(base) / len(base)
        for name, _, ws, eps, *extra in sorted(members, key=lambda m: (m[2], m[0])):
            ideal = ws / n0 * base_eps
            rows.append({
                "run": name,
                "group": " / ".join(str(g) for g in group) if isinstance(group, tuple) else str(group),
                "world_size": ws,
                "examples_per_sec": eps,
                "baseline_world_size": n0,
                "ideal_examples_per_sec": ideal,
                "efficiency": eps / ideal if ideal > 0 else None,
                **(extra[0] if extra else {}),
            })
    return rows


def scaling_rows(runs):
    entries = []
    for run in runs:
        plan = run.plan.content or {}
        extra = {"accum_steps": run.latest.get("accum_steps", plan.get("accum_steps")),
                 "precision": plan_setting(plan, "precision"), "xla": plan_setting(plan, "xla")}
        entries.append((run.name, group_key(run), world_size(run), steady_examples_per_sec(run), extra))
    return efficiency_table(entries)
