"""Exact model FLOPs of our pretrainers, from a ModelConfig.

Pure Python: no TensorFlow import, so the trainer's MFU metric, the
`hvd-plan` capacity planner and the benchmarks share one count.

Conventions (the usual model-FLOPs convention of MFU reports):

* Only matrix multiplications are counted; a [m, k] x [k, n] product costs
  2*m*k*n FLOPs (one multiply and one add per term). This includes the two
  attention matmuls, Q.K^T (2*L^2*H per layer) and probs.V (2*L^2*H).
  Softmax, LayerNorm, GELU, dropout, biases, embedding lookups, the loss and
  the optimizer update are element-wise and left out (together they are a
  few percent of the total for BERT-base at L=128).
* Training = 3 x forward. The backward pass of every counted matmul computes
  two products of the forward's size: the gradient with respect to its input
  and with respect to its weight (for the attention matmuls: with respect to
  both activations). Every counted matmul needs both, because every input
  chain leads back to a trainable embedding table, so the 3x is exact here.
  ELECTRA's sampled replacement tokens are not differentiated through; the
  discriminator starts again from the (shared, trainable) embedding tables,
  which the 3x already covers.
* Recomputation (activation checkpointing) re-runs the encoder forward in
  the backward pass. Those FLOPs are real work for the hardware but not
  model FLOPs: MFU uses `training_flops_*`; `hardware_flops_per_sequence`
  adds the recomputed forward for hardware-utilisation figures.
* The MLM head runs on the masked positions only (`mlm_positions="masked"`,
  the default): our pretrainers gather `max_predictions_per_seq` slots per
  sequence (padding slots included, since they are computed) before the
  transform and the tied output projection. `mlm_positions="all"` counts the
  head on every position instead (the HF/RoBERTa-style head), for
  comparisons with tools that do that.
* Cross-layer sharing (ALBERT) changes parameters, not FLOPs: every layer is
  still applied.

Layer shapes follow hvd_pretrain/models/params.py: MLM head = dense H->E,
LayerNorm, output tied to the E x V word embeddings; pooler H x H on [CLS]
(BERT, ALBERT); NSP/SOP head H -> 2; ELECTRA RTD head = dense H -> H then
H -> 1 on every position; factorized embeddings project E -> H per position.
"""

import math

from hvd_pretrain.models import family

MLM_POSITIONS = ("masked", "all")
DEFAULT_MASK_PROB = 0.15


def matmul_flops(m, k, n):
    """FLOPs of an [m, k] x [k, n] matrix product."""
    return 2 * m * k * n


def default_num_predictions(seq_len, mask_prob=DEFAULT_MASK_PROB):
    """ceil(mask_prob * seq_len): 20 at L=128, as in BERT's recipe.

    Pass the data's max_predictions_per_seq instead when it is known (BERT's
    phase-2 recipe uses 80 at L=512, where this gives 77).
    """
    return int(math.ceil(mask_prob * seq_len))


def encoder_layer_flops(hidden, intermediate, seq_len):
    """Forward FLOPs of one transformer block on one sequence, by part."""
    s, h, i = seq_len, hidden, intermediate
    return {
        "attention_projections": 4 * matmul_flops(s, h, h),  # query, key, value, output
        "attention_scores": matmul_flops(s, h, s),  # Q.K^T summed over heads: heads * 2*s*d*s
        "attention_context": matmul_flops(s, s, h),  # probs.V summed over heads
        "ffn": matmul_flops(s, h, i) + matmul_flops(s, i, h),
    }


def encoder_flops(config, seq_len):
    """Forward FLOPs of the encoder body (projection + all layers), by part."""
    parts = {"embedding_projection": 0}
    if config.embedding_width != config.hidden_size:
        parts["embedding_projection"] = matmul_flops(seq_len, config.embedding_width, config.hidden_size)
    layer = encoder_layer_flops(config.hidden_size, config.intermediate_size, seq_len)
    for name, value in layer.items():
        parts[name] = config.num_layers * value
    return parts


def mlm_head_flops(config, positions):
    """Transform dense H->E and tied output projection E->V on `positions` rows."""
    e = config.embedding_width
    return matmul_flops(positions, config.hidden_size, e) + matmul_flops(positions, e, config.vocab_size)


def _mlm_rows(seq_len, num_predictions, mlm_positions):
    if mlm_positions not in MLM_POSITIONS:
        raise ValueError("mlm_positions=%r is unknown; choose one of %s" % (mlm_positions, ", ".join(MLM_POSITIONS)))
    if mlm_positions == "all":
        return seq_len
    if num_predictions is None:
        return default_num_predictions(seq_len)
    if not 0 <= int(num_predictions) <= seq_len:
        raise ValueError("num_predictions=%r must be between 0 and seq_len=%d" % (num_predictions, seq_len))
    return int(num_predictions)


def _prefixed(prefix, parts):
    return {prefix + name: value for name, value in parts.items()}


def forward_flops_breakdown(config, seq_len, num_predictions=None, mlm_positions="masked"):
    """Component name -> forward FLOPs for one sequence of `seq_len` tokens.

    num_predictions: MLM rows per sequence (the data's max_predictions_per_seq);
    None means default_num_predictions(seq_len). Ignored for mlm_positions="all".
    """
    family.check_model_config(config)
    if int(seq_len) < 1:
        raise ValueError("seq_len=%r must be a positive integer" % seq_len)
    seq_len = int(seq_len)
    rows = _mlm_rows(seq_len, num_predictions, mlm_positions)
    h = config.hidden_size
    if config.family == "electra":
        gen = family.generator_config(config)
        parts = _prefixed("generator/", encoder_flops(gen, seq_len))
        parts["generator/mlm_head"] = mlm_head_flops(gen, rows)
        parts.update(_prefixed("discriminator/", encoder_flops(config, seq_len)))
        parts["discriminator/rtd_head"] = matmul_flops(seq_len, h, h) + matmul_flops(seq_len, h, 1)
        return parts
    parts = encoder_flops(config, seq_len)
    parts["mlm_head"] = mlm_head_flops(config, rows)
    if config.sentence_objective != "none":
        pooler = matmul_flops(1, h, h) if family.has_pooler(config) else 0
        parts["pooler"] = pooler
        parts[config.sentence_objective + "_head"] = matmul_flops(1, h, 2)
    return parts


def forward_flops_per_sequence(config, seq_len, num_predictions=None, mlm_positions="masked"):
    return sum(forward_flops_breakdown(config, seq_len, num_predictions, mlm_positions).values())


def training_flops_per_sequence(config, seq_len, num_predictions=None, mlm_positions="masked"):
    """Model FLOPs of forward + backward for one sequence: 3 x forward."""
    return 3 * forward_flops_per_sequence(config, seq_len, num_predictions, mlm_positions)


def training_flops_per_token(config, seq_len, num_predictions=None, mlm_positions="masked"):
    """Training model FLOPs per (padded) token position at this sequence length."""
    return training_flops_per_sequence(config, seq_len, num_predictions, mlm_positions) / float(seq_len)


def hardware_flops_per_sequence(config, seq_len, num_predictions=None, mlm_positions="masked", recompute=False):
    """Training FLOPs the hardware executes: model FLOPs plus, with
    recompute, one more forward of the encoder bodies (heads are not
    checkpointed)."""
    parts = forward_flops_breakdown(config, seq_len, num_predictions, mlm_positions)
    total = 3 * sum(parts.values())
    if recompute:
        total += sum(v for k, v in parts.items() if not k.endswith("_head") and not k.endswith("pooler"))
    return total


def model_flops_per_second(config, seq_len, sequences_per_sec, num_predictions=None, mlm_positions="masked"):
    """Achieved model FLOP/s for a measured training throughput."""
    return sequences_per_sec * training_flops_per_sequence(config, seq_len, num_predictions, mlm_positions)


def mfu(config, seq_len, sequences_per_sec, peak_flops_per_sec, num_predictions=None, mlm_positions="masked"):
    """Model FLOPs utilisation: achieved model FLOP/s / peak FLOP/s (of all devices counted)."""
    if not peak_flops_per_sec > 0:
        raise ValueError("peak_flops_per_sec=%r must be positive" % peak_flops_per_sec)
    return model_flops_per_second(config, seq_len, sequences_per_sec, num_predictions,
                                  mlm_positions) / float(peak_flops_per_sec)
