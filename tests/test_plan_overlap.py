"""The allreduce/backward overlap model (hvd_pretrain.plan.overlap): gradient groups, buckets, exposure."""

import math

import pytest

from hvd_pretrain.models import flops, params, preset
from hvd_pretrain.models.config import PRESETS
from hvd_pretrain.plan import comm, overlap, predict
from hvd_pretrain.plan.hardware import Link, PlanError

LATENCY_ONLY = Link("latency-only", 1e30, 1.0, 1e-3)  # no bandwidth cost, 1 ms per ring step


def ring(link, g=4, nodes=1):
    return lambda nbytes: comm.ring_time(nbytes, g, nodes, link, link)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_groups_add_up_to_the_model(name):
    config = preset(name)
    groups = overlap.gradient_groups(config, 128, 20)
    assert sum(g.parameters for g in groups) == params.count_parameters(config)
    assert sum(g.forward_flops for g in groups) == flops.forward_flops_per_sequence(config, 128, 20)
    recomputed = sum(g.forward_flops for g in groups if g.recomputed)
    assert 3 * sum(g.forward_flops for g in groups) + recomputed == flops.hardware_flops_per_sequence(
        config, 128, 20, recompute=True)
    assert groups[-1].name.startswith("embeddings") and groups[-1].forward_flops == 0


def test_bert_large_groups_are_heads_blocks_then_embeddings():
    config = preset("large")
    groups = overlap.gradient_groups(config, 128, 20)
    assert [g.name for g in groups] == ["heads"] + ["layer_%d" % k for k in range(23, -1, -1)] + ["embeddings"]
    # The tied word embeddings are complete only at the end of backward: the last bucket is not small.
    assert groups[-1].parameters == params.embedding_parameters(config) > 31e6
    assert groups[1].parameters == params.attention_block_parameters(1024) + params.ffn_block_parameters(1024, 4096)


def test_albert_shared_block_is_complete_only_with_the_embeddings():
    config = preset("albert-base")
    groups = overlap.gradient_groups(config, 128, 20)
    blocks = [g for g in groups if g.name.startswith("layer_")]
    assert len(blocks) == config.num_layers and all(g.parameters == 0 for g in blocks)
    assert groups[-1].parameters == params.embedding_parameters(config) + params.transformer_parameters(config)


def test_zero_bandwidth_cost_leaves_the_latency_terms():
    # Everything ready at once (no backward to hide behind): one bucket, one negotiation, and the
    # latency of ceil(bytes / fusion) buffers x 2(n-1) ring steps.
    nbytes = [100 * 1024 ** 2, 100 * 1024 ** 2, 100 * 1024 ** 2]
    result = overlap.schedule([0.0, 0.0, 0.0], nbytes, ring(LATENCY_ONLY), 0.0, negotiation=0.002)
    buffers = math.ceil(sum(nbytes) / comm.DEFAULT_FUSION_BYTES)
    assert len(result["buckets"]) == 1
    assert result["exposed_sec"] == pytest.approx(0.002 + buffers * 2 * 3 * 1e-3)


def test_a_long_backward_hides_everything_but_the_last_bucket():
    link = Link("slow", 1e9, 1.0, 1e-4)
    nbytes = [10e6, 20e6, 20e6, 60e6]
    ready = [1.0, 2.0, 3.0, 3.0]  # the last two (first block and embeddings) finish together
    result = overlap.schedule(ready, nbytes, ring(link), 3.0, negotiation=5e-4)
    assert [b[1] for b in result["buckets"]] == [1, 1, 2]
    assert result["exposed_sec"] == pytest.approx(5e-4 + ring(link)(80e6))


def test_transfers_queue_behind_each_other():
    # Each transfer takes 1 s, groups are ready every 0.1 s: the channel, not backward, is the limit.
    transfer = lambda nbytes: 1.0  # noqa: E731
    result = overlap.schedule([0.1, 0.2, 0.3], [1, 1, 1], transfer, 0.3, negotiation=0.0, cycle_sec=0.0)
    assert [b[4] for b in result["buckets"]] == pytest.approx([1.1, 2.1, 3.1])
    assert result["exposed_sec"] == pytest.approx(2.8) and result["busy_sec"] == pytest.approx(3.0)


def test_groups_ready_within_one_cycle_fuse():
    result = overlap.schedule([0.0, 0.0005, 0.0009, 0.003], [1, 1, 1, 1], lambda b: 0.0, 0.003, 0.0,
                              cycle_sec=0.001)
    assert [(b[0], b[1], b[2]) for b in result["buckets"]] == [(0, 3, 3), (3, 1, 1)]


def test_no_overlap_is_the_whole_allreduce_after_backward():
    # Every group ready when backward ends: with no negotiation this is the previous model exactly,
    # comm.allreduce_time of all the bytes in fusion buffers.
    link = Link("ib", 10e9, 0.9, 1e-5)
    nbytes = [4e6] + [50e6] * 24 + [127e6]
    result = overlap.schedule([0.4] * len(nbytes), nbytes, ring(link, 8, 4), 0.4, negotiation=0.0)
    _, old, _ = comm.allreduce_time(sum(nbytes), 8, 4, link, link, "ring")
    assert result["exposed_sec"] == pytest.approx(old)


def test_negotiation_per_bucket():
    assert overlap.negotiation_sec(1, 1e-5) == 0.0
    # 256 ranks: half of the 1 ms cycle + two recursive-doubling allreduces of log2(256) = 8 steps
    assert overlap.negotiation_sec(256, 1e-5) == pytest.approx(0.5e-3 + 16 * 1e-5)
    assert overlap.negotiation_sec(3, 1e-5, cycle_sec=0.0) == pytest.approx(4 * 1e-5)


def test_schedule_rejects_groups_out_of_order():
    with pytest.raises(ValueError, match="in order"):
        overlap.schedule([1.0, 0.5], [1, 1], lambda b: 0.0, 1.0, 0.0)


BERT_LARGE_256 = dict(model_config="large", seq_len=128, per_gpu_batch=312, accum_steps=1, precision="fp16",
                      gpu="A100-80G", gpus_per_node=8, nodes=32, fp16_allreduce=True, num_predictions=20)


def test_overlap_exposes_less_than_no_overlap_but_never_nothing():
    over = predict(**BERT_LARGE_256)
    after = predict(overlap=False, **BERT_LARGE_256)
    a = over["allreduce"]
    assert a["buckets"] > 10
    assert a["last_bucket_sec"] + a["negotiation_sec"] - 1e-12 <= a["exposed_sec"] < after["allreduce"]["exposed_sec"]
    assert over["sequences_per_sec"] > after["sequences_per_sec"]


def test_recompute_lengthens_the_backward_that_hides_the_allreduce():
    base = dict(BERT_LARGE_256, per_gpu_batch=64, network="eth-25g")
    plain, recompute = predict(**base), predict(recompute=True, **base)
    assert recompute["allreduce"]["backward_sec"] > plain["allreduce"]["backward_sec"]
    assert recompute["allreduce"]["exposed_sec"] < plain["allreduce"]["exposed_sec"]


def test_fusion_threshold_and_cycle_time_are_inputs():
    small = predict(fusion_bytes=16 * 1024 ** 2, overlap=False, **BERT_LARGE_256)["allreduce"]
    default = predict(overlap=False, **BERT_LARGE_256)["allreduce"]
    assert small["sec"] > default["sec"]  # more buffers, more latency terms
    slow_cycle = predict(cycle_sec=0.01, **BERT_LARGE_256)["allreduce"]
    assert slow_cycle["negotiation_sec"] == pytest.approx(default["negotiation_sec"] + 0.0045)
    with pytest.raises(PlanError, match="^fusion_bytes=0 "):
        predict(fusion_bytes=0, **BERT_LARGE_256)
    with pytest.raises(PlanError, match="^cycle_sec=-1"):
        predict(cycle_sec=-1, **BERT_LARGE_256)
