"""How much of the gradient allreduce the last backward pass hides.

The trainer's last micro-batch of an optimizer step runs its backward pass in
the same tf.function as the allreduce, issued in gradient groups in reverse
layer order: the heads first, then each transformer block from the last to the
first, then the embeddings. A group's allreduce can start as soon as backward
has produced its gradients, so it overlaps the backward of the layers below.
NVIDIA's reference trainer gets the same overlap at accumulation 1 from
hvd.DistributedGradientTape.

The model, per optimizer step (times from the start of the last backward):

* gradient groups (`gradient_groups`): parameters and forward matmul FLOPs of
  each part of the model in backward order. A group is ready when backward has
  gone through it: its backward costs 2x its forward FLOPs (plus 1x more for
  recomputed encoder blocks), at the micro-step's FLOP rate. Gradients that are
  complete only at the very end go to the last group: the word embeddings,
  whose tied MLM decoder adds to them first but whose lookup is the last op of
  backward, and with ALBERT's cross-layer sharing the shared block, whose last
  use in backward is layer 0. The last group is therefore not small: 31.8 M of
  BERT-large's 336 M parameters. The lookup's backward has no matmul, so the
  first block finishes at the same time and shares the last bucket.
* Horovod's background thread wakes every HOROVOD_CYCLE_TIME, fuses every
  tensor that is ready into buffers of at most HOROVOD_FUSION_THRESHOLD bytes
  and runs their allreduces one after the other. Groups that become ready
  within one cycle of each other go into one bucket; a bucket waits on average
  half a cycle for the next wake-up, then one negotiation (with Horovod's
  response cache, two small bitwise allreduces across all ranks, costed as
  recursive doubling: 2 ceil(log2 n) latency terms; Thakur, Rabenseifner and
  Gropp 2005), then transfers when the previous bucket's transfer is done.
  Its transfer time is hvd_pretrain.plan.comm's ring or hierarchical time.
* exposed = max(0, end of the last bucket's transfer - end of backward).
  Even with a backward of any length the last bucket (the embeddings) is
  exposed with its negotiation. Without overlap every group is ready at the
  end of backward: one bucket of all gradients, exposed = negotiation + the
  whole allreduce.

Not modelled: slowdown of the backward kernels by concurrent NCCL kernels,
stragglers, and the data-type casts of fp16 compression.

The defaults (comm.DEFAULT_FUSION_BYTES, DEFAULT_CYCLE_SEC) are Horovod's
since release 0.21, including 0.28.1, which hvd-pretrain uses: a 128 MiB
fusion threshold and a 1 ms cycle time (horovod/common/operations.cc;
`horovodrun --help`; release notes of 0.21.0: "changed default cycle time from
5ms to 1ms and fusion threshold from 64MB to 128MB"). Horovod's tensor-fusion
page still says 64 MB; the code says 128 MiB.
"""

import math
from dataclasses import dataclass

from hvd_pretrain.models import family, flops, params

DEFAULT_CYCLE_SEC = 1e-3  # HOROVOD_CYCLE_TIME's default


@dataclass(frozen=True)
class Group:
    """One gradient group: `parameters` weights whose gradients are complete once backward has done
    `forward_flops` x 2 (x 3 if `recomputed`) FLOPs of work on it, per sequence."""
    name: str
    parameters: int
    forward_flops: float
    recomputed: bool = False  # an encoder block, re-run forward in backward under recompute


def _encoder_groups(prefix, config, seq_len):
    """Transformer blocks from the last to the first; shared weights are left to the caller."""
    h, i = config.hidden_size, config.intermediate_size
    per_layer = sum(flops.encoder_layer_flops(h, i, seq_len).values())
    attention = 0 if config.sharing in ("all", "attention") else params.attention_block_parameters(h)
    ffn = 0 if config.sharing in ("all", "ffn") else params.ffn_block_parameters(h, i)
    groups = [Group("%slayer_%d" % (prefix, k), attention + ffn, per_layer, True)
              for k in reversed(range(config.num_layers))]
    shared = params.transformer_parameters(config) - config.num_layers * (attention + ffn)
    if config.embedding_width != config.hidden_size:
        groups.append(Group(prefix + "embedding_projection", params.projection_parameters(config),
                            flops.matmul_flops(seq_len, config.embedding_width, h), True))
    return groups, shared


def gradient_groups(config, seq_len, num_predictions):
    """[Group] in the order backward completes them; the last is the embeddings (with every weight
    whose gradient is only complete at the end of backward).

    Parameters add up to hvd_pretrain.models.params.count_parameters(config), forward FLOPs to
    hvd_pretrain.models.flops.forward_flops_per_sequence(config, seq_len, num_predictions).
    """
    family.check_model_config(config)
    parts = flops.forward_flops_breakdown(config, seq_len, num_predictions)
    if config.family == "electra":
        gen = family.generator_config(config)
        groups = [Group("discriminator/rtd_head", params.rtd_head_parameters(config),
                        parts["discriminator/rtd_head"])]
        body, shared = _encoder_groups("discriminator/", config, seq_len)
        groups += body
        groups.append(Group("generator/mlm_head", params.mlm_head_parameters(gen), parts["generator/mlm_head"]))
        gen_body, gen_shared = _encoder_groups("generator/", gen, seq_len)
        groups += gen_body
        shared += gen_shared
    else:
        head_params = params.mlm_head_parameters(config) + params.pooler_parameters(config)
        head_flops = parts["mlm_head"]
        if config.sentence_objective != "none":
            head_params += params.sentence_head_parameters(config)
            head_flops += parts["pooler"] + parts[config.sentence_objective + "_head"]
        groups = [Group("heads", head_params, head_flops)]
        body, shared = _encoder_groups("", config, seq_len)
        groups += body
    groups.append(Group("embeddings" + (" + shared blocks" if shared else ""),
                        params.embedding_parameters(config) + shared, 0))
    return groups


def negotiation_sec(world, latency_sec, cycle_sec=DEFAULT_CYCLE_SEC):
    """Per bucket: half a cycle's wait for Horovod's next wake-up plus the response-cache
    coordination (two small allreduces by recursive doubling, 2 ceil(log2 n) latency terms)."""
    if world <= 1:
        return 0.0
    return cycle_sec / 2.0 + 2 * int(math.ceil(math.log2(world))) * latency_sec


def schedule(ready, nbytes, transfer_sec, backward_sec, negotiation, cycle_sec=DEFAULT_CYCLE_SEC):
    """Simulate the buckets of one step's allreduce.

    ready: seconds from the start of the last backward at which each group's gradients are
    complete, non-decreasing; nbytes: each group's gradient bytes; transfer_sec(bytes): seconds one
    fused allreduce of `bytes` takes (fusion buffers and their latencies included); backward_sec:
    when backward ends; negotiation: seconds per bucket before its transfer may start.

    Returns {"exposed_sec", "busy_sec" (sum of transfers), "buckets": [(first group, groups, bytes,
    start, end)]}.
    """
    if len(ready) != len(nbytes) or not ready:
        raise ValueError("ready and nbytes must be non-empty and of the same length")
    if any(b < a for a, b in zip(ready, ready[1:])):
        raise ValueError("groups must be ready in order")
    buckets, free, busy, i = [], 0.0, 0.0, 0
    while i < len(ready):
        j = i + 1
        while j < len(ready) and ready[j] <= ready[i] + cycle_sec:
            j += 1
        size = sum(nbytes[i:j])
        start = max(free, ready[j - 1] + negotiation)
        took = transfer_sec(size)
        free = start + took
        busy += took
        buckets.append((i, j - i, size, start, free))
        i = j
    return {"exposed_sec": max(0.0, free - backward_sec), "busy_sec": busy, "buckets": buckets}


def ready_times(groups, sec_per_flop, recompute):
    """Seconds from the start of backward at which each group is complete (backward = 2x forward,
    3x for recomputed blocks), and the backward's total."""
    t, out = 0.0, []
    for group in groups:
        t += group.forward_flops * (3 if recompute and group.recomputed else 2) * sec_per_flop
        out.append(t)
    return out, t
