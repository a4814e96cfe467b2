"""The FLOP counter against hand counts and structural identities."""

import dataclasses
import sys

import pytest

from hvd_pretrain.models import flops, params
from hvd_pretrain.models.config import preset
import proc


def test_bert_base_matches_a_hand_count_at_seq_128():
    # BERT-base: H=768, 12 heads of 64, I=3072, 12 layers, V=30522; L=128 tokens,
    # 20 MLM predictions per sequence. Each [m,k]x[k,n] matmul = 2*m*k*n FLOPs.
    #
    # One layer, forward:
    #   query, key, value, output: 4 * (2*128*768*768)     = 4 * 150_994_944 = 603_979_776
    #   Q.K^T per head: 2*128*64*128 = 2_097_152; x 12 heads                  =  25_165_824
    #   probs.V per head: 2*128*128*64 = 2_097_152; x 12 heads                =  25_165_824
    #   FFN in + out: 2*128*768*3072 + 2*128*3072*768  = 2 * 603_979_776      = 1_207_959_552
    #   layer total                                                           = 1_862_270_976
    # 12 layers                                                               = 22_347_251_712
    # MLM head on 20 rows: transform 2*20*768*768 = 23_592_960,
    #                      tied decoder 2*20*768*30522 = 937_635_840          = 961_228_800
    # pooler on [CLS]: 2*768*768 = 1_179_648; NSP classifier 2*768*2 = 3_072
    # forward = 22_347_251_712 + 961_228_800 + 1_179_648 + 3_072             = 23_309_663_232
    # training = 3 * forward                                                  = 69_928_989_696
    cfg = preset("base")
    parts = flops.forward_flops_breakdown(cfg, 128, num_predictions=20)
    assert parts["attention_projections"] == 12 * 603_979_776
    assert parts["attention_scores"] == 12 * 25_165_824
    assert parts["attention_context"] == 12 * 25_165_824
    assert parts["ffn"] == 12 * 1_207_959_552
    assert parts["mlm_head"] == 961_228_800
    assert parts["pooler"] == 1_179_648
    assert parts["nsp_head"] == 3_072
    assert parts["embedding_projection"] == 0
    assert flops.forward_flops_per_sequence(cfg, 128, 20) == 23_309_663_232
    assert flops.training_flops_per_sequence(cfg, 128, 20) == 69_928_989_696
    assert flops.training_flops_per_token(cfg, 128, 20) == pytest.approx(69_928_989_696 / 128)


def test_bert_base_hand_count_at_seq_512_with_80_predictions():
    # Per layer at L=512: projections 4*2*512*768*768 = 2_415_919_104;
    # scores and context 2 * (12 * 2*512*64*512) = 2 * 402_653_184 = 805_306_368;
    # FFN 2 * 2*512*768*3072 = 4_831_838_208; layer = 8_053_063_680; x12 = 96_636_764_160.
    # MLM on 80 rows: 2*80*768*(768 + 30522) = 3_844_915_200. Pooler + NSP = 1_182_720.
    cfg = preset("base")
    expected_forward = 96_636_764_160 + 3_844_915_200 + 1_182_720
    assert flops.forward_flops_per_sequence(cfg, 512, num_predictions=80) == expected_forward


@pytest.mark.parametrize("name", ["tiny", "small", "base", "large", "albert-base", "albert-xxlarge"])
def test_weight_matmuls_equal_twice_the_weight_count_per_token(name):
    # An identity independent of the per-part formulas: each weight matrix of the
    # transformer is used once per token, so projections + FFN FLOPs per token =
    # 2 * (number of matrix weights applied per token, counting shared layers L times).
    cfg = preset(name)
    parts = flops.encoder_flops(cfg, 64)
    h, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
    weights_applied = layers * (4 * h * h + 2 * h * i)
    assert (parts["attention_projections"] + parts["ffn"]) / 64 == 2 * weights_applied


def test_sharing_changes_parameters_not_flops():
    shared = preset("albert-base")
    unshared = dataclasses.replace(shared, sharing="none")
    assert params.count_parameters(shared) < params.count_parameters(unshared)
    for seq in (128, 512):
        assert (flops.training_flops_per_sequence(shared, seq)
                == flops.training_flops_per_sequence(unshared, seq))


def test_factorized_embedding_adds_projection_and_shrinks_the_mlm_decoder():
    albert = preset("albert-base")  # E=128, H=768, V=30000
    plain = dataclasses.replace(albert, embedding_size=None)
    a = flops.forward_flops_breakdown(albert, 128, 20)
    p = flops.forward_flops_breakdown(plain, 128, 20)
    assert a["embedding_projection"] == 2 * 128 * 128 * 768
    assert p["embedding_projection"] == 0
    # MLM: transform 768->128 then decoder 128->30000 on 20 rows.
    assert a["mlm_head"] == 2 * 20 * 768 * 128 + 2 * 20 * 128 * 30000
    assert p["mlm_head"] == 2 * 20 * 768 * 768 + 2 * 20 * 768 * 30000
    assert a["ffn"] == p["ffn"]


def test_electra_small_is_generator_plus_discriminator():
    # electra-small: H=256, I=1024, 12 layers, E=128; generator H=64, I=256.
    cfg = preset("electra-small")
    s, rows, v = 128, 20, cfg.vocab_size
    gen_layer = 4 * 2 * s * 64 * 64 + 2 * (2 * s * s * 64) + 2 * (2 * s * 64 * 256)
    disc_layer = 4 * 2 * s * 256 * 256 + 2 * (2 * s * s * 256) + 2 * (2 * s * 256 * 1024)
    expected = (
        2 * s * 128 * 64 + 12 * gen_layer  # generator: E->64 projection + layers
        + 2 * rows * 64 * 128 + 2 * rows * 128 * v  # generator MLM head (masked rows)
        + 2 * s * 128 * 256 + 12 * disc_layer  # discriminator: E->256 projection + layers
        + 2 * s * 256 * 256 + 2 * s * 256 * 1  # RTD head on every position
    )
    assert flops.forward_flops_per_sequence(cfg, s, rows) == expected
    assert "discriminator/rtd_head" in flops.forward_flops_breakdown(cfg, s, rows)


@pytest.mark.parametrize("name,seq,rows", [("base", 128, 20), ("large", 512, 80), ("albert-base", 128, 20),
                                           ("electra-base", 128, 20)])
def test_mlm_on_all_positions_costs_the_head_on_every_row(name, seq, rows):
    cfg = preset(name)
    masked = flops.forward_flops_breakdown(cfg, seq, rows, "masked")
    everywhere = flops.forward_flops_breakdown(cfg, seq, rows, "all")
    key = "generator/mlm_head" if cfg.family == "electra" else "mlm_head"
    assert everywhere[key] * rows == masked[key] * seq
    assert {k: v for k, v in masked.items() if k != key} == {k: v for k, v in everywhere.items() if k != key}


@pytest.mark.parametrize("seq,expected", [(128, 20), (512, 77), (64, 10), (1, 1)])
def test_default_num_predictions(seq, expected):
    assert flops.default_num_predictions(seq) == expected


def test_recompute_adds_one_encoder_forward_to_hardware_flops_only():
    cfg = preset("base")
    parts = flops.forward_flops_breakdown(cfg, 128, 20)
    body = sum(parts[k] for k in ("attention_projections", "attention_scores", "attention_context", "ffn"))
    model = flops.training_flops_per_sequence(cfg, 128, 20)
    assert flops.hardware_flops_per_sequence(cfg, 128, 20, recompute=False) == model
    assert flops.hardware_flops_per_sequence(cfg, 128, 20, recompute=True) == model + body


def test_mfu_arithmetic():
    cfg = preset("base")
    per_seq = flops.training_flops_per_sequence(cfg, 128, 20)
    assert flops.mfu(cfg, 128, 1000.0, per_seq * 4000.0, 20) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="peak_flops_per_sec"):
        flops.mfu(cfg, 128, 1.0, 0.0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(seq_len=0), "seq_len"),
    (dict(seq_len=128, num_predictions=129), "num_predictions"),
    (dict(seq_len=128, mlm_positions="some"), "mlm_positions"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        flops.forward_flops_breakdown(preset("tiny"), **kwargs)


@pytest.mark.timeout(60)
def test_flop_counter_does_not_import_tensorflow():
    code = ("import sys; from hvd_pretrain.models import flops, preset; "
            "flops.training_flops_per_sequence(preset('electra-small'), 128); "
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    proc.run([sys.executable, "-c", code], timeout=50)


class _FakeClockTF:
    """Just enough of the tf module for peak.py: every matmul takes 10 ms of fake time."""

    class _Tensor:
        def __getitem__(self, index):
            return self

        def numpy(self):
            return 0.0

    class _DType:
        is_floating = True
        name = "float32"

    def __init__(self, clock):
        self.clock = clock
        self.random = self
        self.matmuls = 0

    def as_dtype(self, dtype):
        return self._DType()

    def stateless_uniform(self, shape, **kwargs):
        return self._Tensor()

    def cast(self, x, dtype):
        return x

    def matmul(self, a, b):
        self.matmuls += 1
        self.clock[0] += 0.01
        return self._Tensor()


def test_matmul_peak_counts_2n3_per_matmul(monkeypatch):
    from hvd_pretrain.train import peak
    clock = [0.0]
    monkeypatch.setattr(peak.time, "perf_counter", lambda: clock[0])
    fake = _FakeClockTF(clock)
    result = peak.measure_matmul_peak(fake, n=100, repeats=3, min_seconds=0.1)
    assert result == pytest.approx(2 * 100 ** 3 / 0.01)
    assert fake.matmuls >= 1 + 3 * 10  # warm-up, then >= 0.1 s of matmuls per repetition


@pytest.mark.parametrize("kwargs", [dict(n=0), dict(repeats=0), dict(min_seconds=0), dict(dtype="int32")])
def test_matmul_peak_rejects_bad_arguments(kwargs):
    from hvd_pretrain.tfcompat import tf
    from hvd_pretrain.train import peak
    with pytest.raises(ValueError, match="measure_matmul_peak"):
        peak.measure_matmul_peak(tf, **kwargs)


def test_matmul_peak_runs_in_tensorflow():
    from hvd_pretrain.tfcompat import tf
    from hvd_pretrain.train import peak
    value = peak.measure_matmul_peak(tf, n=128, repeats=2, min_seconds=0.02)
    assert isinstance(value, float) and 0 < value < float("inf")


def _contraction_flops(op):
    """2 x (product of all index sizes) of a MatMul / BatchMatMul / Einsum op, from static shapes."""
    shapes = [i.shape.as_list() for i in op.inputs]
    if op.type == "MatMul":
        (m, k), (_, n) = shapes
        if op.get_attr("transpose_a"):
            m, k = k, m
        n = shapes[1][0] if op.get_attr("transpose_b") else n
        return 2 * m * k * n
    if op.type.startswith("BatchMatMul"):
        a, b = shapes
        m, k = (a[-1], a[-2]) if op.get_attr("adj_x") else (a[-2], a[-1])
        n = b[-2] if op.get_attr("adj_y") else b[-1]
        batch = 1
        for d in a[:-2]:
            batch *= d
        return 2 * batch * m * k * n
    if op.type == "Einsum":
        terms = op.get_attr("equation").decode().split("->")[0].split(",")
        sizes = {}
        for term, shape in zip(terms, shapes):
            sizes.update(zip(term, shape))
        total = 2
        for d in sizes.values():
            total *= d
        return total
    return 0


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", ["tiny", "albert-tiny", "electra-tiny"])
def test_counter_matches_the_matmuls_of_the_built_tf_graph(name):
    # Independent of the formulas: trace the real pretrainer (forward, and loss + gradients)
    # and add up every contraction op of the graph from its static shapes.
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.models.features import dummy_features
    from hvd_pretrain.tfcompat import tf
    cfg = preset(name, vocab_size=1000)
    batch, seq, rows = 2, 32, 5
    model = build_pretrainer(cfg)
    model.build_for(batch=batch, seq_length=seq, predictions=rows)
    specs = {k: tf.TensorSpec(v.shape, v.dtype) for k, v in dummy_features(batch, seq, rows).items()}

    def forward(features):
        return model.loss_sums(features, training=False)

    def train(features):
        with tf.GradientTape() as tape:
            sums = model.loss_sums(features, training=True)
            loss = tf.add_n([sums[k] for k in model.objectives])
        return tape.gradient(loss, model.trainable_variables)

    counted = {}
    for label, fn in (("forward", forward), ("train", train)):
        graph = tf.function(fn).get_concrete_function(specs).graph
        counted[label] = sum(_contraction_flops(op) for op in graph.get_operations())
    assert counted["forward"] == batch * flops.forward_flops_per_sequence(cfg, seq, rows)
    assert counted["train"] == batch * flops.training_flops_per_sequence(cfg, seq, rows)
