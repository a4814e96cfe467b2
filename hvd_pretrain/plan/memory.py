"""Memory per GPU: weights, gradients, optimizer state, activations.

Data parallelism keeps a full replica on every GPU. Keras mixed precision
keeps fp32 variables and casts them per use, so weights, gradients, the
accumulation buffer and the LAMB/Adam moments are all fp32 whatever the
compute precision.

Activations follow Korthikanti et al. 2022, "Reducing Activation
Recomputation in Large Transformer Models" (arXiv:2205.05198), section 4.1:
one transformer layer stores s*b*h*(34 + 5*a*s/h) bytes with 16-bit
activations and 1-byte dropout masks, for I = 4H. Written out per tensor
(so that I != 4H and fp32 work):

  16-bit/32-bit elements: s*b*(8H + 2I) + 2*a*s^2*b   (QKV/LN/FFN inputs, softmax and its dropout)
  1-byte dropout masks:   2*s*b*H + a*s^2*b

With full recomputation only each layer's input (s*b*H elements) is kept,
plus one layer's activations while it is recomputed. The count assumes fused
element-wise kernels (XLA); without XLA TensorFlow keeps more intermediates
(e.g. the tanh-GELU's), so treat the result as a lower bound.
"""

from hvd_pretrain.models import family, params
from hvd_pretrain.plan.hardware import GIB

# CUDA context, cuBLAS/cuDNN workspaces and allocator slack: an assumption.
RESERVED_BYTES = 1 * GIB
# Horovod's fusion buffer (HOROVOD_FUSION_THRESHOLD default, 64 MiB).
FUSION_BUFFER_BYTES = 64 * 1024 ** 2
# fp32 copies of the MLM logits kept for the softmax cross-entropy and its gradient.
LOGIT_FP32_COPIES = 2


def _layer_activation_bytes(hidden, intermediate, heads, seq_len, batch, act_bytes):
    s, b, h, i, a = seq_len, batch, hidden, intermediate, heads
    elements = s * b * (8 * h + 2 * i) + 2 * a * s * s * b
    masks = 2 * s * b * h + a * s * s * b
    return elements * act_bytes + masks


def _encoder_activation_bytes(config, seq_len, batch, act_bytes, recompute):
    per_layer = _layer_activation_bytes(config.hidden_size, config.intermediate_size, config.num_heads,
                                        seq_len, batch, act_bytes)
    # Embedding sum + LayerNorm + dropout (and the factorized projection's input).
    embed = seq_len * batch * (config.hidden_size * (2 * act_bytes + 1) + config.embedding_width * act_bytes)
    if recompute:
        return embed + config.num_layers * seq_len * batch * config.hidden_size * act_bytes + per_layer
    return embed + config.num_layers * per_layer


def _mlm_head_bytes(config, rows, batch, act_bytes):
    e, v = config.embedding_width, config.vocab_size
    return rows * batch * (config.hidden_size * act_bytes + 2 * e * act_bytes + v * (act_bytes + 4 * LOGIT_FP32_COPIES))


def activation_bytes(config, seq_len, batch, precision, num_predictions, recompute=False):
    """Activations kept for the backward pass of one micro-batch."""
    act = 4 if precision == "fp32" else 2
    if config.family == "electra":
        gen = family.generator_config(config)
        total = _encoder_activation_bytes(gen, seq_len, batch, act, recompute)
        total += _mlm_head_bytes(gen, num_predictions, batch, act)
        total += _encoder_activation_bytes(config, seq_len, batch, act, recompute)
        total += seq_len * batch * config.hidden_size * 2 * act  # RTD head
        return total
    return (_encoder_activation_bytes(config, seq_len, batch, act, recompute)
            + _mlm_head_bytes(config, num_predictions, batch, act))


def memory_per_gpu(config, seq_len, batch, precision, accum_steps, num_predictions, capacity_bytes,
                   recompute=False):
    """Bytes per GPU by component, the total and whether it fits."""
    n = params.count_parameters(config)
    parts = {
        "weights": 4 * n,
        "gradients": 4 * n,
        "accumulation_buffer": 4 * n if accum_steps > 1 else 0,
        "optimizer_state": 8 * n,  # two fp32 moments (LAMB, AdamW)
        "activations": activation_bytes(config, seq_len, batch, precision, num_predictions, recompute),
        "reserved": RESERVED_BYTES + FUSION_BUFFER_BYTES,
    }
    total = sum(parts.values())
    return {"parts": parts, "total": total, "capacity": capacity_bytes, "fits": total <= capacity_bytes,
            "parameters": n}


def max_batch_that_fits(config, seq_len, precision, accum_steps, num_predictions, capacity_bytes,
                        recompute=False, limit=4096):
    """Largest per-GPU micro-batch whose memory fits (0 if none)."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        m = memory_per_gpu(config, seq_len, mid, precision, accum_steps, num_predictions, capacity_bytes, recompute)
        if m["fits"]:
            lo = mid
        else:
            hi = mid - 1
    return lo
