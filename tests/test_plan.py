"""Planner arithmetic: communication, memory, step time and batch searches, as tables of cases."""

import pytest

from hvd_pretrain.models import flops, params, preset
from hvd_pretrain.plan import comm, format_prediction, hardware, memory, predict, search
from hvd_pretrain.plan.hardware import GIB, Link, PlanError

FAST = Link("fast", 10e9, 1.0, 0.0)  # 10 GB/s bus bandwidth, no latency
SLOW = Link("slow", 1e9, 1.0, 0.0)


@pytest.mark.parametrize("nbytes,g,nodes,expected", [
    (1e9, 1, 1, 0.0),
    (1e9, 2, 1, 2 * 1 / 2 * 1e9 / 10e9),  # 0.1 s
    (1e9, 4, 1, 2 * 3 / 4 * 1e9 / 10e9),  # 0.15 s
    (1e9, 8, 4, 2 * 31 / 32 * 1e9 / 1e9),  # flat ring limited by the node's network: 1.9375 s
    (1e9, 1, 4, 2 * 3 / 4 * 1e9 / 1e9),  # one GPU per node: only the network
])
def test_ring_time(nbytes, g, nodes, expected):
    assert comm.ring_time(nbytes, g, nodes, FAST, SLOW) == pytest.approx(expected)


@pytest.mark.parametrize("nbytes,g,nodes,expected", [
    (1e9, 8, 1, 2 * 7 / 8 * 0.1),  # intra-node only: 0.175 s
    (1e9, 8, 4, 2 * 7 / 8 * 0.1 + 2 * 3 / 4 * 1.0),  # + inter-node allreduce of the shards: 1.675 s
    (1e9, 1, 4, 2 * 3 / 4 * 1.0),
])
def test_hierarchical_time(nbytes, g, nodes, expected):
    assert comm.hierarchical_time(nbytes, g, nodes, FAST, SLOW) == pytest.approx(expected)


def test_latency_is_paid_per_fusion_buffer_and_ring_step():
    lat = Link("lat", 1e12, 1.0, 1e-3)
    nbytes = 2 * comm.DEFAULT_FUSION_BYTES + 1  # three buffers
    bandwidth = 2 * 3 / 4 * nbytes / 1e12
    assert comm.ring_time(nbytes, 4, 1, lat, lat) == pytest.approx(bandwidth + 3 * 2 * 3 * 1e-3)


@pytest.mark.parametrize("algorithm,g,nodes,expected", [
    ("auto", 8, 4, "hierarchical"),  # 1.675 s vs 1.9375 s: only 2(N-1)/N of the bytes cross the network
    ("auto", 8, 1, "ring"),  # one node: both are the same ring; ties go to the plain ring
    ("hierarchical", 8, 4, "hierarchical"),
    ("ring", 8, 4, "ring"),
])
def test_algorithm_choice(algorithm, g, nodes, expected):
    chosen, seconds, times = comm.allreduce_time(1e9, g, nodes, FAST, SLOW, algorithm)
    assert chosen == expected and seconds == times[expected]


def test_hierarchical_wins_when_latency_dominates():
    slow_latency = Link("eth", 1e9, 1.0, 1e-3)
    chosen, _, times = comm.allreduce_time(1e6, 8, 32, FAST, slow_latency)
    assert chosen == "hierarchical" and times["hierarchical"] < times["ring"]


@pytest.mark.parametrize("params_,fp16,expected", [(1000, False, 4000), (1000, True, 2000)])
def test_allreduce_bytes(params_, fp16, expected):
    assert comm.allreduce_bytes(params_, fp16) == expected


@pytest.mark.parametrize("h,a,s,b", [(768, 12, 128, 32), (1024, 16, 512, 10), (256, 4, 64, 1)])
def test_layer_activations_match_korthikanti_closed_form(h, a, s, b):
    # Korthikanti et al. 2022, eq. (1): s*b*h*(34 + 5*a*s/h) bytes per layer, 16-bit, I = 4H.
    got = memory._layer_activation_bytes(h, 4 * h, a, s, b, 2)
    assert got == pytest.approx(s * b * h * (34 + 5 * a * s / h))


def test_memory_parts_for_bert_base():
    cfg = preset("base")
    n = params.count_parameters(cfg)
    one = memory.memory_per_gpu(cfg, 128, 32, "fp16", 1, 20, 16 * GIB)
    four = memory.memory_per_gpu(cfg, 128, 32, "fp16", 4, 20, 16 * GIB)
    assert one["parts"]["weights"] == 4 * n and one["parts"]["optimizer_state"] == 8 * n
    assert one["parts"]["accumulation_buffer"] == 0 and four["parts"]["accumulation_buffer"] == 4 * n
    assert one["total"] == sum(one["parts"].values()) and one["fits"]
    fp32 = memory.memory_per_gpu(cfg, 128, 32, "fp32", 1, 20, 16 * GIB)
    recompute = memory.memory_per_gpu(cfg, 128, 32, "fp16", 1, 20, 16 * GIB, recompute=True)
    assert fp32["parts"]["activations"] > 1.8 * one["parts"]["activations"]
    assert recompute["parts"]["activations"] < 0.3 * one["parts"]["activations"]


@pytest.mark.parametrize("gpu,precision,batch,fits", [
    # NVIDIA's DGX A100 table runs 312 (AMP) and 176 (TF32) per GPU and notes that
    # TF32 at 312 runs out of memory; the DGX-2 table runs 60 (AMP) on V100 32GB.
    ("A100-80G", "fp16", 312, True),
    ("A100-80G", "fp32", 176, True),
    ("A100-80G", "fp32", 312, False),
    ("V100-32G", "fp16", 60, True),
])
def test_memory_agrees_with_published_batch_sizes(gpu, precision, batch, fits):
    p = predict("large", 128, batch, 32, precision, gpu, 8, 1, num_predictions=20)
    assert p["memory"]["fits"] is fits


def test_max_batch_that_fits_is_the_boundary():
    cfg = preset("base")
    best = memory.max_batch_that_fits(cfg, 128, "fp32", 2, 20, 16 * GIB)
    assert memory.memory_per_gpu(cfg, 128, best, "fp32", 2, 20, 16 * GIB)["fits"]
    assert not memory.memory_per_gpu(cfg, 128, best + 1, "fp32", 2, 20, 16 * GIB)["fits"]


@pytest.mark.parametrize("overlap", [True, False])
def test_step_time_arithmetic_with_a_given_efficiency(overlap):
    p = predict("base", 128, 10, 4, "fp16", "V100-16G", 8, 2, efficiency=0.5, num_predictions=20, overlap=overlap)
    per_seq = flops.training_flops_per_sequence(preset("base"), 128, 20)
    micro = 10 * per_seq / (125e12 * 0.5)
    assert p["compute"]["micro_step_sec"] == pytest.approx(micro)
    c = p["compute"]
    step = 4 * (micro + c["accumulate_sec"]) + c["optimizer_sec"] + p["allreduce"]["exposed_sec"]
    assert p["step_sec"] == pytest.approx(step)
    assert p["inputs"]["global_batch"] == 10 * 4 * 16
    assert p["sequences_per_sec"] == pytest.approx(640 / step)
    assert p["tokens_per_sec"] == pytest.approx(640 * 128 / step)
    assert p["mfu"] == pytest.approx(640 / step * per_seq / (16 * 125e12))
    a = p["allreduce"]
    assert p["scaling_efficiency"] == pytest.approx((step - a["exposed_sec"]) / step)
    assert a["backward_sec"] == pytest.approx(2 / 3 * micro)
    if overlap:  # at least the last bucket and its negotiation, at most what is left after backward
        assert a["last_bucket_sec"] + a["negotiation_sec"] - 1e-12 <= a["exposed_sec"] < a["sec"]
    else:  # the whole allreduce after one negotiation
        assert a["exposed_sec"] == pytest.approx(a["sec"] + a["negotiation_sec"]) and a["buckets"] == 1


@pytest.mark.parametrize("changes,better", [
    (dict(accum_steps=8), "scaling_efficiency"),  # more accumulation amortises the allreduce
    (dict(fp16_allreduce=True), "scaling_efficiency"),
    (dict(network="ib-ndr"), "scaling_efficiency"),
    (dict(overlap=True), "scaling_efficiency"),
])
def test_what_helps_scaling(changes, better):
    base = dict(model_config="base", seq_len=128, per_gpu_batch=32, accum_steps=1, precision="fp16",
                gpu="V100-16G", gpus_per_node=8, nodes=4, network="eth-25g", overlap=False)
    assert predict(**dict(base, **changes))[better] > predict(**base)[better]


def test_one_gpu_has_no_communication():
    p = predict("base", 128, 32, 1, "fp16", "A100-40G", 1, 1)
    assert p["allreduce"]["sec"] == 0 and p["scaling_efficiency"] == 1.0


def test_format_prediction_shows_memory_throughput_and_sources():
    text = format_prediction(predict("large", 512, 64, 1, "fp16", "V100-16G", 8, 1))
    assert "DOES NOT FIT" in text and "warning: does not fit" in text
    assert "global step/s" in text and "sequences/s" in text
    assert "NVIDIA DeepLearningExamples" in text and "Korthikanti" in text and "datasheet" in text


@pytest.mark.parametrize("kwargs,match", [
    (dict(gpu="K80"), "^gpu='K80' is unknown"),
    (dict(interconnect="infiniband"), "^interconnect='infiniband' is unknown"),
    (dict(network="token-ring"), "^network='token-ring' is unknown"),
    (dict(precision="fp8"), "^precision='fp8' is unknown"),
    (dict(gpu="V100-32G", precision="bf16"), "^precision='bf16' is not supported"),
    (dict(per_gpu_batch=0), "^per_gpu_batch=0"),
    (dict(seq_len=1024), "^seq_len=1024 exceeds"),
    (dict(allreduce="tree"), "^allreduce='tree'"),
    (dict(efficiency=1.5), "^efficiency=1.5"),
])
def test_bad_inputs_name_the_argument(kwargs, match):
    args = dict(model_config="base", seq_len=128, per_gpu_batch=32, accum_steps=1, precision="fp16",
                gpu="A100-80G", gpus_per_node=8, nodes=2)
    with pytest.raises(PlanError, match=match):
        predict(**dict(args, **kwargs))


def test_best_accum_steps_prefers_the_largest_micro_batch_that_fits():
    best, rows = search.best_accum_steps("base", 128, 8192, "fp16", "V100-16G", 8, 4)
    assert [r["accum_steps"] for r in rows] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert all(r["per_gpu_batch"] * r["accum_steps"] * 32 == 8192 for r in rows)
    assert not rows[0]["fits"]  # 256 sequences of 128 tokens per V100-16G
    assert best == max((r for r in rows if r["fits"]), key=lambda r: r["sequences_per_sec"])
    assert best["accum_steps"] == 2
    with pytest.raises(PlanError, match="target_global_batch"):
        search.best_accum_steps("base", 128, 1000, "fp16", "V100-16G", 8, 4)


def test_consistent_plans_lie_in_the_range_and_fit():
    rows = search.consistent_plans("base", 128, "fp16", "V100-16G", 8, 4, (1.3, 1.9))
    assert rows
    for r in rows:
        assert 1.3 <= r["global_step_per_sec"] <= 1.9 and r["memory_gib"] <= 16


def test_hardware_presets_are_complete():
    assert set(hardware.GPUS) == {"V100-16G", "V100-32G", "A100-40G", "A100-80G", "H100"}
    for gpu in hardware.GPUS.values():
        assert gpu.peak["fp16"] > gpu.peak["fp32"] > 0 and gpu.memory_bytes > 0 and gpu.source
        for name in hardware.NETWORKS:
            assert hardware.inter_node_link(gpu, name).effective_bytes_per_sec > 0


def test_best_accum_steps_is_none_when_no_split_fits():
    # ~1.3B parameters: 20 bytes each of fp32 state is more than a V100-16G even at batch 1.
    huge = preset("large", hidden_size=2048, num_heads=16, intermediate_size=8192)
    best, rows = search.best_accum_steps(huge, 128, 64, "fp32", "V100-16G", 8, 1)
    assert best is None and rows and not any(r["fits"] for r in rows)


@pytest.mark.parametrize("changes,needle", [
    (dict(per_gpu_batch=2), "smaller than the calibration rows"),
    (dict(nodes=4, network="eth-10g"), "communication takes"),
    (dict(gpu="H100", precision="bf16"), None),
])
def test_warnings(changes, needle):
    args = dict(model_config="base", seq_len=128, per_gpu_batch=64, accum_steps=1, precision="fp16",
                gpu="V100-32G", gpus_per_node=8, nodes=1)
    p = predict(**dict(args, **changes))
    if needle is None:
        assert p["warnings"] == [] and "A100 efficiency reused" in " ".join(p["assumptions"])
    else:
        assert any(needle in w for w in p["warnings"]), p["warnings"]
