"""Synthetic run directories in the trainer's and supervisor's formats.

For the monitor's benchmarks and tests: a run of any length, with a chosen
slow rank, restarts and a final state, written in bulk.
"""

import json
import math
import os

from hvd_pretrain import rundir


def metrics_record(step, t0, total, world, interval=10.0, slow_rank=None, per_rank_batch=8, seq=128,
                   accum=1, with_rank_stats=False):
    examples = world * per_rank_batch * accum / (1.0 + 0.05 * (world - 1))
    sps = examples / (world * per_rank_batch * accum)
    rec = {
        "time": t0 + step * interval, "step": step, "num_train_steps": total,
        "global_step_per_sec": sps, "examples_per_sec": examples, "tokens_per_sec": examples * seq,
        "loss": 8.0 * math.exp(-step / max(1.0, total / 3.0)) + 1.5,
        "lr": 1e-4 * min(1.0, step / max(1.0, total / 10.0)),
        "losses": {"mlm": 7.0 * math.exp(-step / max(1.0, total / 3.0)) + 1.2, "nsp": 0.7},
        "elapsed": step * interval, "eta_sec": (total - step) * interval,
        "world_size": world, "accum_steps": accum, "global_batch": world * per_rank_batch * accum,
        "mfu": 0.31, "loss_scale": 32768.0,
    }
    if with_rank_stats:
        slow = slow_rank if slow_rank is not None else 0
        rec["ranks"] = {"step_time": {"min": 0.10, "median": 0.11, "max": 0.25 if slow_rank is not None else 0.12},
                        "slowest_rank": slow, "data_wait": {"min": 0.001, "median": 0.002, "max": 0.02}}
    return rec


def write_run(root, name, steps=50, total=None, world=2, t0=1.7e9, interval=10.0, slow_rank=None,
              job_state=None, restarts=0, rank_stats_every=0, events=True, per_rank_batch=8, accum=1,
              model="bert-tiny"):
    """Create runs/<name> with plan.json, metrics.jsonl, ranks/<r>.jsonl and (optionally) job.json."""
    run = rundir.RunDir(os.path.join(root, name)).ensure()
    total = total or steps
    rundir.write_json_atomic(run.plan, {
        "per_rank_batch": per_rank_batch, "accum_steps": accum, "world_size": world,
        "global_batch": world * per_rank_batch * accum, "num_train_steps": total, "warmup_steps": total // 10,
        "max_seq_length": 128, "model": {"name": model, "hidden_size": 128, "num_hidden_layers": 2}})
    with open(run.metrics, "w") as f:
        lines = []
        for step in range(1, steps + 1):
            rec = metrics_record(step, t0, total, world, interval, slow_rank, per_rank_batch, accum=accum,
                                 with_rank_stats=bool(rank_stats_every) and step % rank_stats_every == 0)
            if events and step == 1:
                rec["event"] = "start"
            elif events and step % 20 == 0:
                rec["event"] = "checkpoint"
            lines.append(json.dumps(rec) + "\n")
            if len(lines) >= 10000:
                f.write("".join(lines))
                lines = []
        f.write("".join(lines))
    for rank in range(world):
        with open(run.rank_log(rank), "w") as f:
            lines = []
            for step in range(1, steps + 1):
                slow = rank == slow_rank
                lines.append(json.dumps({
                    "time": t0 + step * interval, "step": step, "rank": rank, "host": "node%d" % (rank // 8),
                    "step_time": (0.25 if slow else 0.10) + 0.001 * (step % 5),
                    "data_wait": 0.02 if slow else 0.002}) + "\n")
                if len(lines) >= 10000:
                    f.write("".join(lines))
                    lines = []
            f.write("".join(lines))
    if job_state:
        history = []
        start = t0
        for i in range(restarts + 1):
            last = i == restarts
            end = t0 + steps * interval if last else start + (steps * interval) / (restarts + 1)
            failed = job_state == "failed" or not last
            history.append({"pid": 1000 + i, "start": start, "end": end if (not last or job_state != "running") else None,
                            "exit_code": (1 if failed else 0) if (not last or job_state != "running") else None,
                            "reason": "exit 1" if failed else "finished"})
            start = end + 5
        rundir.write_json_atomic(run.job, {
            "name": name, "state": job_state, "pid": 1000 + restarts, "pgid": 1000 + restarts,
            "restarts": restarts, "history": history, "command": ["hvd-pretrain", "--run_dir", run.root],
            "run_dir": run.root})
    return run
