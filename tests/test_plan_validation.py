"""The planner against NVIDIA's published TF2 BERT-large pre-training throughputs,
and the explanation of a BERT-base record on 32 x V100-16G.

Published rows (NVIDIA DeepLearningExamples, TensorFlow2/LanguageModeling/BERT
README, TF 21.02, BERT-large, seq 128, AMP, LAMB) are written out here from
the README, independently of hvd_pretrain.plan.published, whose 1-GPU rows
calibrate the compute efficiency. None of the rows below is used to calibrate.
"""

import pytest

from hvd_pretrain.plan import predict, published, search

# Tolerances, from the errors the planner has (BENCHMARKS.md, "Planner validation"): every seq-128 row is
# within +1.8% .. +10.0% (the largest at 256 GPUs, accumulation 1, where the step loses time the model
# leaves out); the A100 seq-512 row is +18.1%, as it was before the overlap model, which does not touch it
# (accumulation 96, no overlap in the reference trainer).
TOLERANCE_SEQ128 = 0.12
TOLERANCE_ANY_ROW = 0.20
TOLERANCE_WEAK_SCALING = 0.10


def nvidia_bert_large(per_gpu_batch, accum_steps, gpu, gpus_per_node, nodes):
    # The reference trainer: AMP with Horovod fp16 gradient compression; with accumulation it
    # allreduces after the last micro-batch, without it through DistributedGradientTape (overlapped).
    return predict("large", 128, per_gpu_batch, accum_steps, "fp16", gpu, gpus_per_node, nodes, "nvlink",
                   network="infiniband", fp16_allreduce=True, overlap=accum_steps == 1, num_predictions=20)


@pytest.mark.parametrize("label,batch,accum,gpu,g,nodes,published_seq_per_sec", [
    ("8x V100 DGX-2", 60, 128, "V100-32G", 8, 1, 1561.77),
    ("16x V100 DGX-2", 60, 64, "V100-32G", 16, 1, 3077.99),
    ("8x A100-80G", 312, 32, "A100-80G", 8, 1, 3799.24),
    ("16x A100 (2 DGX A100)", 312, 16, "A100-80G", 8, 2, 7551.37),
    ("64x A100 (8 DGX A100)", 312, 4, "A100-80G", 8, 8, 29711.11),
    ("256x A100 (32 DGX A100)", 312, 1, "A100-80G", 8, 32, 110280.73),
])
def test_seq128_sequences_per_sec_within_12_percent(label, batch, accum, gpu, g, nodes, published_seq_per_sec):
    p = nvidia_bert_large(batch, accum, gpu, g, nodes)
    assert p["memory"]["fits"], label
    error = p["sequences_per_sec"] / published_seq_per_sec - 1
    assert abs(error) <= TOLERANCE_SEQ128, "%s: predicted %.0f vs published %.0f (%+.1f%%)" % (
        label, p["sequences_per_sec"], published_seq_per_sec, 100 * error)


def test_weak_scaling_to_256_a100_within_10_percent():
    # Published: 1 node (8 GPUs, accum 32) 3803.82 seq/s; 32 nodes (accum 1) 110280.73 seq/s,
    # weak scaling 28.99 of 32 = 90.6%.
    one_node = nvidia_bert_large(312, 32, "A100-80G", 8, 1)["sequences_per_sec"]
    many = nvidia_bert_large(312, 1, "A100-80G", 8, 32)
    predicted = many["sequences_per_sec"] / (32 * one_node)
    assert abs(predicted / (28.99 / 32) - 1) <= TOLERANCE_WEAK_SCALING
    assert predicted <= 1.0
    # Overlapped, the allreduce of the last bucket (embeddings and the first block) is still exposed.
    assert many["allreduce"]["exposed_sec"] > 0


def test_every_published_multi_gpu_row_within_20_percent():
    # Includes the seq-512 rows.
    for m in published.VALIDATION:
        p = predict("large", m.seq_len, m.per_gpu_batch, m.accum_steps, m.precision, m.gpu, m.gpus_per_node,
                    m.nodes, "nvlink", fp16_allreduce=True, overlap=m.accum_steps == 1,
                    num_predictions=m.num_predictions)
        error = p["sequences_per_sec"] / m.sequences_per_sec - 1
        assert abs(error) <= TOLERANCE_ANY_ROW, (m, error)


def test_calibration_reproduces_the_single_gpu_rows_it_came_from():
    for m in published.CALIBRATION:
        p = predict("large", m.seq_len, m.per_gpu_batch, m.accum_steps, m.precision, m.gpu, 1, 1,
                    num_predictions=m.num_predictions)
        # The only difference left is the optimizer update and accumulation, amortised over accum steps.
        assert p["sequences_per_sec"] == pytest.approx(m.sequences_per_sec, rel=0.03)


# BERT-base on 32 x V100-16G (4 nodes x 8, NVLink inside, DGX-1-style 4x EDR InfiniBand between):
# the record reports 1.3-1.9 global steps/s at seq 128.
RECORD = dict(model_config="base", seq_len=128, gpu="V100-16G", gpus_per_node=8, nodes=4)


def test_record_rate_is_not_reached_without_accumulation_in_fp16():
    # Every per-GPU batch that fits runs faster than 1.9 step/s when each step is one micro-batch.
    for batch in (16, 32, 64, 128):
        p = predict(per_gpu_batch=batch, accum_steps=1, precision="fp16", **RECORD)
        assert p["memory"]["fits"] and p["global_step_per_sec"] > 1.9, batch


@pytest.mark.parametrize("precision,low,high", [
    ("fp16", 300, 700),  # e.g. 64 x 8, 96 x 4, 128 x 3-4 sequences per GPU per step
    ("fp32", 80, 130),  # e.g. 32 x 3, 48 x 2, 96 x 1
])
def test_record_rate_implies_sequences_per_gpu_per_step(precision, low, high):
    plans = search.consistent_plans(RECORD["model_config"], 128, precision, "V100-16G", 8, 4, (1.3, 1.9))
    assert plans
    for plan in plans:
        assert low <= plan["per_gpu_batch"] * plan["accum_steps"] <= high, plan
