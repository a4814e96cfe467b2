"""Allreduce time for one optimizer step: ring vs hierarchical.

The alpha-beta model of Thakur, Rabenseifner and Gropp, "Optimization of
Collective Communication Operations in MPICH" (2005): a ring allreduce of M
bytes over n ranks sends 2(n-1)/n * M bytes per rank in 2(n-1) steps, so

    t_ring = 2(n-1)/n * M / B + 2(n-1) * alpha    per fused buffer

where B is the bus bandwidth of the slowest hop. In a flat ring across
nodes, NCCL runs one ring per NIC and each ring crosses every node boundary,
so B = min(intra-node per-GPU bandwidth, all NICs of a node).

Hierarchical allreduce (Horovod's HOROVOD_HIERARCHICAL_ALLREDUCE=1):
reduce-scatter inside the node, allreduce of each GPU's 1/g shard across
nodes (all shards share the node's NICs), allgather inside the node:

    t_hier = 2(g-1)/g * M / B_intra + 2(N-1)/N * M / B_node + (2(g-1) a_intra + 2(N-1) a_inter) per buffer

Horovod fuses gradients into buffers of HOROVOD_FUSION_THRESHOLD bytes (128
MiB by default since Horovod 0.21, see hvd_pretrain.plan.overlap); the latency
terms are paid once per buffer. How much of this time backward hides is
hvd_pretrain.plan.overlap.
"""

import math

ALGORITHMS = ("auto", "ring", "hierarchical")
DEFAULT_FUSION_BYTES = 128 * 1024 ** 2  # HOROVOD_FUSION_THRESHOLD's default (horovod/common/operations.cc)


def allreduce_bytes(num_parameters, fp16_compression):
    """Gradient bytes each rank allreduces per optimizer step (fp32 gradients, or fp16 when compressed)."""
    return num_parameters * (2 if fp16_compression else 4)


def _buffers(nbytes, fusion_bytes):
    return max(1, int(math.ceil(nbytes / float(fusion_bytes))))


def ring_time(nbytes, gpus_per_node, nodes, intra, inter, fusion_bytes=DEFAULT_FUSION_BYTES):
    n = gpus_per_node * nodes
    if n == 1:
        return 0.0
    if nodes == 1:
        bandwidth, alpha = intra.effective_bytes_per_sec, intra.latency_sec
    elif gpus_per_node == 1:
        bandwidth, alpha = inter.effective_bytes_per_sec, inter.latency_sec
    else:
        bandwidth = min(intra.effective_bytes_per_sec, inter.effective_bytes_per_sec)
        alpha = max(intra.latency_sec, inter.latency_sec)
    return 2.0 * (n - 1) / n * nbytes / bandwidth + _buffers(nbytes, fusion_bytes) * 2 * (n - 1) * alpha


def hierarchical_time(nbytes, gpus_per_node, nodes, intra, inter, fusion_bytes=DEFAULT_FUSION_BYTES):
    g, N = gpus_per_node, nodes
    if g * N == 1:
        return 0.0
    t = 0.0
    buffers = _buffers(nbytes, fusion_bytes)
    if g > 1:
        t += 2.0 * (g - 1) / g * nbytes / intra.effective_bytes_per_sec + buffers * 2 * (g - 1) * intra.latency_sec
    if N > 1:
        t += 2.0 * (N - 1) / N * nbytes / inter.effective_bytes_per_sec + buffers * 2 * (N - 1) * inter.latency_sec
    return t


def allreduce_time(nbytes, gpus_per_node, nodes, intra, inter, algorithm="auto", fusion_bytes=DEFAULT_FUSION_BYTES):
    """(chosen algorithm, seconds, {algorithm: seconds}) for one allreduce of `nbytes`."""
    times = {"ring": ring_time(nbytes, gpus_per_node, nodes, intra, inter, fusion_bytes),
             "hierarchical": hierarchical_time(nbytes, gpus_per_node, nodes, intra, inter, fusion_bytes)}
    if algorithm == "auto":
        algorithm = min(times, key=lambda k: (times[k], k != "ring"))
    return algorithm, times[algorithm], times
