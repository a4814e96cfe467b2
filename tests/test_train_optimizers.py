"""AdamW and LAMB against the papers' update equations, computed independently in NumPy."""

import numpy as np
import pytest

from hvd_pretrain.tfcompat import tf
from hvd_pretrain.train.optimizers import AdamWeightDecay

B1, B2, EPS, WD, LR = 0.9, 0.999, 1e-6, 0.1, 0.01


def numpy_reference(weights, grads_per_step, lamb, excluded, bias_correction=True):
    """Loshchilov & Hutter (AdamW) / You et al. Algorithm 2 (LAMB), phi = identity.

    bias_correction=False: Google's AdamWeightDecayOptimizer (BERT) and LAMBOptimizer (ALBERT).
    """
    w = {k: v.astype(np.float64).copy() for k, v in weights.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    for t, grads in enumerate(grads_per_step, start=1):
        for k in w:
            g = grads[k].astype(np.float64)
            m[k] = B1 * m[k] + (1 - B1) * g
            v[k] = B2 * v[k] + (1 - B2) * g * g
            m_hat = m[k] / (1 - B1 ** t) if bias_correction else m[k]
            v_hat = v[k] / (1 - B2 ** t) if bias_correction else v[k]
            r = m_hat / (np.sqrt(v_hat) + EPS)
            u = r if k in excluded else r + WD * w[k]
            if lamb and k not in excluded:
                wn, un = np.linalg.norm(w[k]), np.linalg.norm(u)
                ratio = wn / un if wn > 0 and un > 0 else 1.0
            else:
                ratio = 1.0
            w[k] = w[k] - LR * ratio * u
    return w


@pytest.mark.parametrize("bias_correction", [True, False], ids=["bias_correction", "google"])
@pytest.mark.parametrize("lamb", [False, True], ids=["adamw", "lamb"])
def test_matches_numpy_reference(lamb, bias_correction):
    rng = np.random.RandomState(0)
    init = {"dense/kernel": rng.randn(4, 3).astype(np.float32) * 2.0,
            "layer_norm/gamma": (1.0 + 0.1 * rng.randn(3)).astype(np.float32),
            "dense/bias": (0.5 * rng.randn(3)).astype(np.float32)}
    steps = [{k: rng.randn(*v.shape).astype(np.float32) * (0.01 if "kernel" in k else 1.0)
              for k, v in init.items()} for _ in range(4)]
    # Names as in the model ("<layer>/<weight>"): they decide exclusion.
    variables = {k: tf.Variable(v, name=k) for k, v in init.items()}
    assert variables["layer_norm/gamma"].name.startswith("layer_norm/gamma")
    opt = AdamWeightDecay(learning_rate=LR, weight_decay_rate=WD, beta_1=B1, beta_2=B2, epsilon=EPS,
                          layerwise_adaptation=lamb, bias_correction=bias_correction)
    order = list(init)
    opt.build([variables[k] for k in order])
    for grads in steps:
        opt.apply_gradients([(tf.constant(grads[k]), variables[k]) for k in order])
    ref = numpy_reference(init, steps, lamb, excluded={"layer_norm/gamma", "dense/bias"},
                          bias_correction=bias_correction)
    for k in order:
        np.testing.assert_allclose(variables[k].numpy(), ref[k], rtol=2e-5, atol=2e-6, err_msg=k)
    # The decayed kernel really moved differently from plain Adam (decay and trust ratio are live).
    plain = numpy_reference(init, steps, lamb=False, excluded=set(init), bias_correction=bias_correction)
    assert np.max(np.abs(ref["dense/kernel"] - plain["dense/kernel"])) > 1e-4
    # And the bias correction is live: the other setting gives other weights.
    other = numpy_reference(init, steps, lamb, excluded={"layer_norm/gamma", "dense/bias"},
                            bias_correction=not bias_correction)
    assert np.max(np.abs(ref["layer_norm/gamma"] - other["layer_norm/gamma"])) > 1e-4


def test_bias_correction_flag_reaches_the_optimizer():
    from hvd_pretrain.train.config import TrainConfig
    from hvd_pretrain.train.optimization import make_optimizer
    assert make_optimizer(TrainConfig()).bias_correction
    google = make_optimizer(TrainConfig(adam_bias_correction=False, adam_epsilon=1e-8, adam_beta2=0.98))
    assert (google.bias_correction, google.epsilon, google.beta_2) == (False, 1e-8, 0.98)


def test_exclusion_patterns_match_model_variable_names():
    opt = AdamWeightDecay(layerwise_adaptation=True)

    class V:
        def __init__(self, name):
            self.name = name

    assert opt.excluded(V("pretrainer/encoder/block_0/ffn_0/layer_norm/gamma:0"))
    assert opt.excluded(V("pretrainer/encoder/block_0/ffn_0/intermediate/bias:0"))
    assert opt.excluded(V("pretrainer/mlm_head/output_bias:0"))
    assert not opt.excluded(V("pretrainer/encoder/block_0/ffn_0/intermediate/kernel:0"))
    assert not opt.excluded(V("pretrainer/encoder/embeddings/word_embeddings:0"))


def _problem(seed=1, n=6):
    rng = np.random.RandomState(seed)
    names = ["block_%d/dense/kernel" % i for i in range(n - 2)] + ["layer_norm/gamma", "dense/bias"]
    init = {k: rng.randn(5, 4).astype(np.float32) for k in names}
    grads = [{k: rng.randn(5, 4).astype(np.float32) for k in names} for _ in range(3)]
    return init, grads


@pytest.mark.parametrize("lamb", [False, True], ids=["adamw", "lamb"])
def test_xla_compiled_update_matches_eager(lamb):
    """The update compiles under XLA (a fused step may jit the optimizer) and gives the eager weights."""
    init, grads = _problem()
    results = []
    for jit in (False, True):
        variables = {k: tf.Variable(v, name=k) for k, v in init.items()}
        opt = AdamWeightDecay(learning_rate=LR, weight_decay_rate=WD, layerwise_adaptation=lamb)
        opt.build(list(variables.values()))
        apply = tf.function(lambda g: opt.apply_gradients([(g[k], variables[k]) for k in init]), jit_compile=jit)
        for step in grads:
            apply({k: tf.constant(v) for k, v in step.items()})
        results.append({k: v.numpy() for k, v in variables.items()})
    for k in init:
        np.testing.assert_allclose(results[1][k], results[0][k], rtol=1e-5, atol=1e-6, err_msg=k)
        assert np.max(np.abs(results[1][k] - init[k])) > 1e-3


def test_adamw_update_is_a_few_ops_per_variable(monkeypatch):
    """Without our fused kernel (test_fused_adamw.py), AdamW runs TensorFlow's fused Adam kernel per
    variable (plus the decay), not a chain of element-wise ops."""
    monkeypatch.setenv("HVD_PRETRAIN_FUSED_KERNELS", "0")
    counts = {}
    for n in (6, 26):
        init, grads = _problem(n=n)
        variables = [tf.Variable(v, name=k) for k, v in init.items()]
        opt = AdamWeightDecay(learning_rate=LR, weight_decay_rate=WD)
        opt.build(variables)
        apply = tf.function(lambda g: opt.apply_gradients(zip(g, variables)))
        graph = apply.get_concrete_function([tf.constant(g) for g in grads[0].values()]).graph
        ops = graph.get_operations()
        counts[n] = len(ops)
        assert sum(op.type == "ResourceApplyAdam" for op in ops) == n
    per_variable = (counts[26] - counts[6]) / 20
    # A decayed variable: the gradient's placeholder and identity, the captured handles of w, m and v,
    # the read of w and its identity, the decay and the fused Adam kernel: 9 (the element-wise form took 54).
    assert per_variable <= 9, counts
