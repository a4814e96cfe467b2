"""predict(): step time, throughput and memory of a data-parallel pre-training job.

One optimizer step on every GPU is

    accum_steps x (micro-step compute + gradient accumulation)
    + exposed allreduce time + optimizer update

* micro-step compute = per-GPU batch x model FLOPs per sequence /
  (peak x efficiency), with the efficiency measured on one GPU
  (hvd_pretrain.plan.published);
* accumulation and the optimizer update are memory-bound: bytes touched per
  parameter / (HBM bandwidth x HBM_EFFICIENCY);
* the allreduce is hvd_pretrain.plan.comm, issued in gradient groups in
  reverse layer order during the last micro-batch's backward pass, as the
  hvd-pretrain trainer does; the exposed part is hvd_pretrain.plan.overlap.
  `overlap=False` models an allreduce issued after backward has finished
  (NVIDIA's reference trainer with accumulation, and hvd-pretrain before it
  overlapped).
"""

from hvd_pretrain.models import flops
from hvd_pretrain.models.config import ModelConfig, preset
from hvd_pretrain.plan import comm, hardware, memory, overlap as overlap_model, published
from hvd_pretrain.plan.hardware import PlanError

# Memory-bound update costs (planning assumptions, printed with each prediction).
HBM_EFFICIENCY = 0.8
ACCUMULATE_BYTES_PER_PARAM = 12  # read gradient and buffer, write buffer (fp32)
OPTIMIZER_BYTES_PER_PARAM = 64  # LAMB: read g, w, m, v and write w, m, v (28 B) ~x2 for unfused norms/clip/casts


def _positive(name, value):
    try:
        ok = int(value) == value and int(value) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise PlanError("%s=%r must be a positive integer" % (name, value))
    return int(value)


def resolve_model(model_config):
    if isinstance(model_config, ModelConfig):
        return model_config
    return preset(str(model_config))


def predict(model_config, seq_len, per_gpu_batch, accum_steps, precision, gpu, gpus_per_node, nodes,
            interconnect="nvlink", *, network="infiniband", nics_per_node=None, fp16_allreduce=False,
            allreduce="auto", overlap=True, recompute=False, num_predictions=None, efficiency=None,
            fusion_bytes=comm.DEFAULT_FUSION_BYTES, cycle_sec=overlap_model.DEFAULT_CYCLE_SEC):
    """Predicted memory, step time and throughput; a JSON-serialisable dict.

    model_config: a ModelConfig or a preset name. precision: fp32|fp16|bf16.
    gpu: a key of hardware.GPUS. interconnect: intra-node link (nvlink|pcie);
    network: inter-node network (hardware.NETWORKS). efficiency overrides the
    published compute efficiency (a fraction of peak). overlap: the allreduce
    overlaps the last micro-batch's backward (hvd_pretrain.plan.overlap).
    fusion_bytes, cycle_sec: Horovod's HOROVOD_FUSION_THRESHOLD (bytes) and
    HOROVOD_CYCLE_TIME (in seconds here).
    """
    config = resolve_model(model_config)
    seq_len = _positive("seq_len", seq_len)
    batch = _positive("per_gpu_batch", per_gpu_batch)
    accum = _positive("accum_steps", accum_steps)
    g = _positive("gpus_per_node", gpus_per_node)
    nodes = _positive("nodes", nodes)
    if seq_len > config.max_position_embeddings:
        raise PlanError("seq_len=%d exceeds model.max_position_embeddings=%d" % (seq_len, config.max_position_embeddings))
    if allreduce not in comm.ALGORITHMS:
        raise PlanError("allreduce=%r is unknown; choose one of %s" % (allreduce, ", ".join(comm.ALGORITHMS)))
    if not int(fusion_bytes) >= 1024 ** 2:
        raise PlanError("fusion_bytes=%r must be at least 1 MiB (Horovod's 0, no fusion, is not modelled)"
                        % fusion_bytes)
    if not float(cycle_sec) >= 0:
        raise PlanError("cycle_sec=%r must be >= 0" % cycle_sec)
    dev = hardware.get_gpu(gpu)
    peak = hardware.peak_flops(dev, precision)
    intra = hardware.intra_node_link(dev, interconnect)
    inter = hardware.inter_node_link(dev, network, nics_per_node)
    rows = num_predictions if num_predictions is not None else flops.default_num_predictions(seq_len)
    world = g * nodes
    warnings = []

    per_seq = flops.training_flops_per_sequence(config, seq_len, rows)
    hw_per_seq = flops.hardware_flops_per_sequence(config, seq_len, rows, recompute=recompute)
    if efficiency is None:
        eff, eff_note = published.compute_efficiency(dev, precision, seq_len)
    else:
        if not 0 < float(efficiency) <= 1:
            raise PlanError("efficiency=%r must be a fraction in (0, 1]" % efficiency)
        eff, eff_note = float(efficiency), "given by the user"
    micro = batch * hw_per_seq / (peak * eff)
    hbm = dev.hbm_bytes_per_sec * HBM_EFFICIENCY

    mem = memory.memory_per_gpu(config, seq_len, batch, precision, accum, rows, dev.memory_bytes, recompute)
    n_params = mem["parameters"]
    accumulate = n_params * ACCUMULATE_BYTES_PER_PARAM / hbm if accum > 1 else 0.0
    optimizer = n_params * OPTIMIZER_BYTES_PER_PARAM / hbm
    nbytes = comm.allreduce_bytes(n_params, fp16_allreduce)
    _, _, comm_times = comm.allreduce_time(nbytes, g, nodes, intra, inter, allreduce, fusion_bytes)
    step_comm = _step_allreduce(config, seq_len, rows, batch / (peak * eff), recompute, fp16_allreduce, g, nodes,
                                intra, inter, overlap, fusion_bytes, cycle_sec)
    algorithm = allreduce if allreduce != "auto" else min(
        step_comm, key=lambda k: (step_comm[k]["exposed_sec"], comm_times[k], k != "ring"))
    comm_sec, plan = comm_times[algorithm], step_comm[algorithm]
    exposed, last = plan["exposed_sec"], plan["buckets"][-1]

    compute = accum * (micro + accumulate) + optimizer
    step = compute + exposed
    global_batch = batch * accum * world
    seqs = global_batch / step
    if not mem["fits"]:
        warnings.append("does not fit: %.1f GiB needed, %.1f GiB on %s; lower per_gpu_batch (max %d) or use recompute"
                        % (mem["total"] / hardware.GIB, dev.memory_bytes / hardware.GIB, dev.name,
                           memory.max_batch_that_fits(config, seq_len, precision, accum, rows, dev.memory_bytes,
                                                      recompute)))
    if batch * seq_len < 4096 and efficiency is None:
        warnings.append("micro-batch of %d tokens is smaller than the calibration rows (>= 3072 tokens); "
                        "real efficiency is likely lower" % (batch * seq_len))
    if exposed > 0.25 * step:
        warnings.append("communication takes %.0f%% of the step; raise accum_steps, use fp16_allreduce "
                        "or a faster network" % (100 * exposed / step))

    return {
        "inputs": {"model": config.preset or config.family, "seq_len": seq_len, "per_gpu_batch": batch,
                   "accum_steps": accum, "precision": precision, "gpu": dev.name, "gpus_per_node": g,
                   "nodes": nodes, "world_size": world, "interconnect": intra.name,
                   "network": "%s x%d" % (inter.name, inter.nics_per_node) if nodes > 1 else "none",
                   "fp16_allreduce": bool(fp16_allreduce), "overlap": bool(overlap), "recompute": bool(recompute),
                   "num_predictions": rows, "global_batch": global_batch},
        "model": {"parameters": n_params, "train_flops_per_sequence": per_seq,
                  "hardware_flops_per_sequence": hw_per_seq},
        "memory": {"parts": mem["parts"], "total": mem["total"], "capacity": mem["capacity"], "fits": mem["fits"]},
        "compute": {"peak_flops": peak, "efficiency": eff, "micro_step_sec": micro, "accumulate_sec": accumulate,
                    "optimizer_sec": optimizer},
        "allreduce": {"algorithm": algorithm, "bytes": nbytes, "sec": comm_sec, "ring_sec": comm_times["ring"],
                      "hierarchical_sec": comm_times["hierarchical"], "exposed_sec": exposed,
                      "backward_sec": plan["backward_sec"], "buckets": len(plan["buckets"]),
                      "negotiation_sec": plan["negotiation_sec"], "last_bucket_bytes": last[2],
                      "last_bucket_sec": last[4] - last[3], "fusion_bytes": int(fusion_bytes),
                      "cycle_sec": float(cycle_sec)},
        "step_sec": step,
        "global_step_per_sec": 1.0 / step,
        "sequences_per_sec": seqs,
        "tokens_per_sec": seqs * seq_len,
        "scaling_efficiency": compute / step,
        "mfu": seqs * per_seq / (world * peak),
        "assumptions": [
            "peak: %s" % dev.source,
            "efficiency %.1f%% of peak: %s" % (100 * eff, eff_note),
            "model FLOPs: matmuls only, 2mnk, training = 3x forward, MLM head on %d positions (models/flops.py)"
            % rows,
            "intra-node %s: %.0f GB/s per GPU x %.2f achievable, %.0f us per step (%s)"
            % (intra.name, intra.bytes_per_sec / 1e9, intra.achievable, intra.latency_sec * 1e6, intra.source),
            "inter-node %s x%d: %.1f GB/s per NIC x %.2f achievable, %.0f us per step (%s)"
            % (inter.name, inter.nics_per_node, inter.bytes_per_sec / 1e9, inter.achievable,
               inter.latency_sec * 1e6, inter.source),
            "allreduce: alpha-beta ring / hierarchical model (Thakur et al. 2005), %d MiB fusion buffers, "
            "%.1f ms cycle (Horovod's HOROVOD_FUSION_THRESHOLD and HOROVOD_CYCLE_TIME; defaults of 0.21+)"
            % (fusion_bytes // 1024 ** 2, 1e3 * cycle_sec),
            ("overlap: gradient groups in reverse layer order start their allreduce when the last backward "
             "produces them; Horovod fuses what is ready within one cycle; each bucket waits half a cycle and "
             "a response-cache negotiation; the last (embeddings) is always exposed (plan/overlap.py)")
            if overlap else "no overlap: the whole allreduce starts after the last backward (plan/overlap.py)",
            "activations: Korthikanti et al. 2022 (arXiv:2205.05198) per-layer count; fp32 weights, gradients, "
            "2 fp32 optimizer moments; %.1f GiB reserved" % (memory.RESERVED_BYTES / hardware.GIB),
            "accumulate %d B/param per micro-step, optimizer update %d B/param, at %.0f%% of %.0f GB/s HBM"
            % (ACCUMULATE_BYTES_PER_PARAM, OPTIMIZER_BYTES_PER_PARAM, 100 * HBM_EFFICIENCY,
               dev.hbm_bytes_per_sec / 1e9),
        ],
        "warnings": warnings,
    }


def _step_allreduce(config, seq_len, rows, sec_per_flop, recompute, fp16_allreduce, g, nodes, intra, inter,
                    overlap, fusion_bytes, cycle_sec):
    """{algorithm: overlap.schedule(...) result + backward_sec, negotiation_sec} for one optimizer step."""
    groups = overlap_model.gradient_groups(config, seq_len, rows)
    ready, backward = overlap_model.ready_times(groups, sec_per_flop, recompute)
    if not overlap:
        ready = [backward] * len(groups)
    nbytes = [comm.allreduce_bytes(group.parameters, fp16_allreduce) for group in groups]
    latency = (inter if nodes > 1 else intra).latency_sec
    negotiation = overlap_model.negotiation_sec(g * nodes, latency, cycle_sec)
    out = {}
    for name, fn in (("ring", comm.ring_time), ("hierarchical", comm.hierarchical_time)):
        plan = overlap_model.schedule(ready, nbytes, lambda b: fn(b, g, nodes, intra, inter, fusion_bytes), backward,
                                      negotiation, cycle_sec)
        out[name] = dict(plan, backward_sec=backward, negotiation_sec=negotiation)
    return out


def _gib(x):
    return "%.2f GiB" % (x / hardware.GIB)


def format_prediction(p):
    """A human-readable report of predict()'s dict."""
    i, m, c, a = p["inputs"], p["memory"], p["compute"], p["allreduce"]
    lines = [
        "plan: %s seq %d, %d/GPU x accum %d x %d GPUs (%d nodes x %d) = global batch %d, %s on %s"
        % (i["model"], i["seq_len"], i["per_gpu_batch"], i["accum_steps"], i["world_size"], i["nodes"],
           i["gpus_per_node"], i["global_batch"], i["precision"], i["gpu"]),
        "memory per GPU: %s of %s -> %s" % (_gib(m["total"]), _gib(m["capacity"]), "fits" if m["fits"] else "DOES NOT FIT"),
    ]
    lines += ["  %-20s %s" % (k, _gib(v)) for k, v in m["parts"].items()]
    lines += [
        "compute: %.1f GFLOP/sequence (model), %.1f%% of %.1f TFLOP/s -> micro-step %.1f ms"
        % (p["model"]["train_flops_per_sequence"] / 1e9, 100 * c["efficiency"], c["peak_flops"] / 1e12,
           1e3 * c["micro_step_sec"]),
        "  accumulate %.2f ms per micro-step, optimizer update %.2f ms per step"
        % (1e3 * c["accumulate_sec"], 1e3 * c["optimizer_sec"]),
        "allreduce: %.1f MB/step (%s), ring %.1f ms, hierarchical %.1f ms -> %s, exposed %.1f ms"
        % (a["bytes"] / 1e6, "fp16" if i["fp16_allreduce"] else "fp32", 1e3 * a["ring_sec"],
           1e3 * a["hierarchical_sec"], a["algorithm"], 1e3 * a["exposed_sec"]),
        ("  overlapped with the last backward (%.1f ms): %d buckets, last %.1f MB in %.2f ms, "
         "%.2f ms negotiation each" if i["overlap"] else
         "  not overlapped (backward %.1f ms): %d bucket of %.1f MB in %.2f ms after %.2f ms negotiation")
        % (1e3 * a["backward_sec"], a["buckets"], a["last_bucket_bytes"] / 1e6, 1e3 * a["last_bucket_sec"],
           1e3 * a["negotiation_sec"]),
        "step: %.3f s -> %.3f global step/s, %.1f sequences/s, %.0f tokens/s, scaling efficiency %.1f%%, MFU %.1f%%"
        % (p["step_sec"], p["global_step_per_sec"], p["sequences_per_sec"], p["tokens_per_sec"],
           100 * p["scaling_efficiency"], 100 * p["mfu"]),
        "assumptions:",
    ]
    lines += ["  - " + s for s in p["assumptions"]]
    lines += ["warning: " + w for w in p["warnings"]]
    return "\n".join(lines)
