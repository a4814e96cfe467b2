"""Downstream-probe results of a run (`<run>/finetune/*.json`, written by hvd-finetune) for the dashboard.

`read_probes(run_dir)` turns each results file into what the run page's "Downstream probe" chart
draws: accuracy and F1 (mean and sample std over the seeds) against the checkpoint's pre-training
step, and the rows without a step (random initialisation, a public checkpoint) as horizontal
reference lines. A file that cannot be read or has no usable result is skipped with a one-line note
naming it; nothing here raises on bad files. Pure Python (the monitor imports no TensorFlow).
"""

import json
import math
import os
import re

from hvd_pretrain import rundir
from hvd_pretrain.numbered import numbered_key

MAX_FILES = 100
MAX_BYTES = 8 << 20  # a results file is a few kB; anything this large is not one


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _stat(value):
    """{"mean", "std"} from a result's {"mean": m, "std": s}; None unless the mean is a finite number."""
    if not isinstance(value, dict):
        return None
    mean = _number(value.get("mean"))
    if mean is None:
        return None
    std = _number(value.get("std"))
    return {"mean": mean, "std": None if std is None or std < 0 else std}


def _protocol(config):
    """"fine-tuned" or "frozen encoder", and the learning rate, from the file's FinetuneConfig dict."""
    config = config if isinstance(config, dict) else {}
    frozen = config.get("freeze_encoder")
    protocol = None if frozen is None else ("frozen encoder" if frozen else "fine-tuned")
    seeds = config.get("seeds")
    n_seeds = len([s for s in str(seeds).split(",") if s.strip()]) if seeds is not None else None
    return protocol, _number(config.get("learning_rate")), n_seeds


def parse_result(report, stem):
    """One hvd-finetune report (a dict) -> (task view, problem or None); the view is None if unusable.

    The view: {"id", "file", "task", "protocol", "learning_rate", "seeds", "f1_name", "dev_examples",
    "points": [{"step", "source", "accuracy", "f1"}] sorted by step (the last row wins a repeated
    step), "references": [{"source", "random", "accuracy", "f1"}]}; accuracy and f1 are
    {"mean", "std"} (std None when absent), f1 None when the file has none.
    """
    name = "%s/%s.json" % (rundir.FINETUNE, stem)
    if not isinstance(report, dict):
        return None, "%s: not a JSON object; skipped" % name
    results = report.get("results")
    if not isinstance(results, list):
        return None, "%s: no \"results\" list; skipped" % name
    points, references, bad = {}, [], 0
    for row in results:
        accuracy = _stat(row.get("accuracy")) if isinstance(row, dict) else None
        if accuracy is None:
            bad += 1
            continue
        source = row.get("source") if isinstance(row.get("source"), str) else "?"
        entry = {"source": source, "accuracy": accuracy, "f1": _stat(row.get("f1"))}
        step = row.get("step")
        if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
            points[step] = dict(entry, step=step)
        elif step is None:
            references.append(dict(entry, random=source.startswith(rundir.RANDOM_INIT)))
        else:
            bad += 1
    if not points and not references:
        return None, "%s: no result with a numeric accuracy; skipped" % name
    protocol, learning_rate, seeds = _protocol(report.get("config"))
    task = report.get("task") if isinstance(report.get("task"), str) and report.get("task") else stem
    view = {"id": re.sub(r"[^A-Za-z0-9_-]", "_", stem), "file": name, "task": task, "protocol": protocol,
            "learning_rate": learning_rate, "seeds": seeds,
            "f1_name": report.get("f1_name") if isinstance(report.get("f1_name"), str) else "F1",
            "dev_examples": report.get("dev_examples") if _number(report.get("dev_examples")) is not None else None,
            "points": [points[s] for s in sorted(points)], "references": references}
    problem = ("%s: %d result row(s) without a numeric accuracy or step skipped" % (name, bad)) if bad else None
    return view, problem


def _listing(directory):
    try:
        entries = [e for e in os.scandir(directory) if e.name.endswith(".json") and not e.name.startswith(".")]
    except OSError:
        return []
    out = []
    for entry in entries:
        try:
            st = entry.stat()
        except OSError:
            continue
        if not entry.is_file():
            continue
        out.append((entry.name, st.st_mtime_ns, st.st_size))
    out.sort(key=lambda e: numbered_key(e[0]))
    return out


def read_probes(run_dir, listing=None):
    """{"tasks": [task view, ...], "notes": ["<file>: what is wrong; skipped", ...]} of a run directory.

    No finetune/ directory (or an empty one) gives no tasks and no notes.
    """
    directory = os.path.join(run_dir, rundir.FINETUNE)
    listing = _listing(directory) if listing is None else listing
    tasks, notes = [], []
    if len(listing) > MAX_FILES:
        notes.append("%s/: %d results files, showing the first %d" % (rundir.FINETUNE, len(listing), MAX_FILES))
    for name, _, size in listing[:MAX_FILES]:
        stem = name[:-len(".json")]
        shown = "%s/%s" % (rundir.FINETUNE, name)
        if size > MAX_BYTES:
            notes.append("%s: %d bytes, too large for a results file; skipped" % (shown, size))
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                report = json.load(f)
        except (OSError, UnicodeDecodeError) as e:
            notes.append("%s: unreadable (%s); skipped" % (shown, e))
            continue
        except ValueError as e:
            notes.append("%s: not valid JSON (%s); skipped" % (shown, e))
            continue
        view, problem = parse_result(report, stem)
        if view is not None:
            tasks.append(view)
        if problem:
            notes.append(problem)
    return {"tasks": tasks, "notes": notes}


def run_probes(run):
    """read_probes of a RunMonitor, cached until a file in its finetune/ directory changes."""
    listing = _listing(os.path.join(run.dir.root, rundir.FINETUNE))
    signature = tuple(listing)
    with run.lock:
        cached = run.cache.get("probes")
    if cached is not None and cached["signature"] == signature:
        return cached["result"]
    result = read_probes(run.dir.root, listing)
    with run.lock:
        run.cache["probes"] = {"signature": signature, "result": result}
    return result
