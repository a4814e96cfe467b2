"""Searches over batch plans: the best accum_steps for a target global batch, and
the plans consistent with an observed global step rate."""

from hvd_pretrain.plan import memory
from hvd_pretrain.plan.hardware import PlanError
from hvd_pretrain.plan.estimate import predict


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def best_accum_steps(model_config, seq_len, target_global_batch, precision, gpu, gpus_per_node, nodes,
                     interconnect="nvlink", **options):
    """(best row or None, all rows) over accum_steps that split `target_global_batch` exactly.

    Each row: {"accum_steps", "per_gpu_batch", "fits", "global_step_per_sec", "sequences_per_sec",
    "memory_gib"}. The best row fits in memory and has the highest sequences/s.
    """
    world = int(gpus_per_node) * int(nodes)
    if int(target_global_batch) < 1 or int(target_global_batch) % world:
        raise PlanError("target_global_batch=%r must be a positive multiple of the world size %d"
                        % (target_global_batch, world))
    rows = []
    for accum in _divisors(int(target_global_batch) // world):
        batch = int(target_global_batch) // (world * accum)
        p = predict(model_config, seq_len, batch, accum, precision, gpu, gpus_per_node, nodes, interconnect, **options)
        rows.append({"accum_steps": accum, "per_gpu_batch": batch, "fits": p["memory"]["fits"],
                     "global_step_per_sec": p["global_step_per_sec"], "sequences_per_sec": p["sequences_per_sec"],
                     "memory_gib": p["memory"]["total"] / memory.GIB})
    fitting = [r for r in rows if r["fits"]]
    best = max(fitting, key=lambda r: (r["sequences_per_sec"], -r["accum_steps"])) if fitting else None
    return best, rows


def consistent_plans(model_config, seq_len, precision, gpu, gpus_per_node, nodes, step_rate_range,
                     interconnect="nvlink", batches=(8, 16, 24, 32, 48, 64, 96, 128), accums=(1, 2, 3, 4, 6, 8, 16),
                     **options):
    """Per-GPU batch x accum_steps plans that fit and whose predicted global step/s is in the range."""
    lo, hi = step_rate_range
    found = []
    for batch in batches:
        for accum in accums:
            p = predict(model_config, seq_len, batch, accum, precision, gpu, gpus_per_node, nodes, interconnect,
                        **options)
            if p["memory"]["fits"] and lo <= p["global_step_per_sec"] <= hi:
                found.append({"per_gpu_batch": batch, "accum_steps": accum,
                              "global_batch": p["inputs"]["global_batch"],
                              "global_step_per_sec": p["global_step_per_sec"],
                              "sequences_per_sec": p["sequences_per_sec"],
                              "memory_gib": p["memory"]["total"] / memory.GIB})
    return found
