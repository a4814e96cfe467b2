"""Our fused AdamW kernel (hvd_pretrain/kernels/fused_adamw.cc) against TensorFlow's stock kernels.

The optimizer runs the fused kernel where it can and the stock ops elsewhere (HVD_PRETRAIN_FUSED_KERNELS=0,
a failed build, XLA); both must give the same weights and moments to the bit, with and without the
clip factor, decay and bias correction.
"""

import logging
import threading

import numpy as np
import pytest

from batches import synthetic_batch
from hvd_pretrain import kernels
from hvd_pretrain.tfcompat import tf
from hvd_pretrain.train.optimizers import AdamWeightDecay, clip_factor

NAMES = ["encoder/dense/kernel", "embeddings/word_embeddings", "layer_norm/gamma", "dense/bias"]
SHAPES = [(37, 29), (301, 16), (29,), (5,)]  # sizes that are not multiples of a vector width or a block


_FUSED_ADAMW = kernels.fused_adamw


def _use_fused(monkeypatch, on):
    """Our AdamW kernel on or off; everything else (the cross-entropy kernel) as it is."""
    monkeypatch.setattr(kernels, "fused_adamw", _FUSED_ADAMW if on else lambda: None)


def _run(monkeypatch, fused, steps=4, clip_norm=None, bias_correction=True, grad_scale_form=True):
    _use_fused(monkeypatch, fused)
    rng = np.random.RandomState(3)
    variables = [tf.Variable(rng.randn(*s).astype(np.float32), name=n) for n, s in zip(NAMES, SHAPES)]
    grads = [[tf.constant(rng.randn(*s).astype(np.float32) * (1 + 3 * t)) for s in SHAPES] for t in range(steps)]
    opt = AdamWeightDecay(learning_rate=0.01, weight_decay_rate=0.1, bias_correction=bias_correction)
    opt.build(variables)

    @tf.function
    def apply(gs):
        if clip_norm is None:
            opt.apply_gradients(zip(gs, variables))
        elif grad_scale_form:
            opt.apply_gradients(zip(gs, variables), grad_scale=clip_factor(tf.linalg.global_norm(gs), clip_norm))
        else:
            clipped, _ = tf.clip_by_global_norm(gs, clip_norm)
            opt.apply_gradients(zip(clipped, variables))

    for gs in grads:
        apply(gs)
    graph_ops = {op.type for op in apply.get_concrete_function(grads[0]).graph.get_operations()}
    return [x.numpy() for x in variables + opt._m + opt._v], graph_ops


def test_the_kernel_builds_on_this_machine():
    # Without it every other test here would compare the stock ops with themselves.
    assert kernels.fused_adamw() is not None


@pytest.mark.parametrize("bias_correction", [True, False], ids=["bias_correction", "google"])
@pytest.mark.parametrize("clip_norm", [None, 1.0, 0.3], ids=["no_clip", "clip_1", "clip_0.3"])
def test_fused_equals_stock_ops_to_the_bit(monkeypatch, clip_norm, bias_correction):
    fused, fused_ops = _run(monkeypatch, True, clip_norm=clip_norm, bias_correction=bias_correction)
    stock, stock_ops = _run(monkeypatch, False, clip_norm=clip_norm, bias_correction=bias_correction)
    assert "HvdFusedAdamW" in fused_ops and "ResourceApplyAdam" not in fused_ops
    assert "HvdFusedAdamW" not in stock_ops and "ResourceApplyAdam" in stock_ops
    for name, a, b in zip([n + s for s in ("", "/m", "/v") for n in NAMES], fused, stock):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "stock"])
def test_grad_scale_is_clip_by_global_norm(monkeypatch, fused):
    """apply_gradients(grad_scale=clip_factor(...)) updates as clipping the gradients first does."""
    scaled, _ = _run(monkeypatch, fused, clip_norm=1.0)
    clipped, _ = _run(monkeypatch, fused, clip_norm=1.0, grad_scale_form=False)
    unclipped, _ = _run(monkeypatch, fused)
    for a, b in zip(scaled, clipped):
        np.testing.assert_array_equal(a, b)
    assert max(np.max(np.abs(a - b)) for a, b in zip(scaled, unclipped)) > 1e-3  # the clip was live


def test_clip_factor_matches_tensorflow_and_keeps_nan():
    grads = [tf.constant([3.0, 4.0]), tf.constant([[12.0]])]
    norm = tf.linalg.global_norm(grads)  # 13
    for clip in (1.0, 0.3, 20.0):
        ours = [g * clip_factor(norm, clip) for g in grads]
        theirs, _ = tf.clip_by_global_norm(grads, clip, use_norm=norm)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.isnan(clip_factor(tf.constant(float("inf")), 1.0).numpy())


def test_one_kernel_per_variable(monkeypatch):
    counts = {}
    for n in (4, 24):
        variables = [tf.Variable(tf.ones([3, 2]), name="block_%d/kernel" % i) for i in range(n)]
        opt = AdamWeightDecay(learning_rate=0.01, weight_decay_rate=0.1)
        opt.build(variables)
        apply = tf.function(lambda g: opt.apply_gradients(zip(g, variables), grad_scale=tf.constant(0.5)))
        ops = apply.get_concrete_function([tf.ones([3, 2])] * n).graph.get_operations()
        assert sum(op.type == "HvdFusedAdamW" for op in ops) == n
        assert not {"ResourceApplyGradientDescent", "ResourceApplyAdam"} & {op.type for op in ops}
        counts[n] = (len(ops), sum(op.type == "Mul" for op in ops))
    # Per variable: the gradient's placeholder, its identity, the captured handles of w, m, v, the kernel;
    # and no multiplication by the clip factor (the scalars' Mul ops are shared by every variable).
    assert (counts[24][0] - counts[4][0]) / 20 <= 6, counts
    assert counts[24][1] == counts[4][1], counts


def test_kernel_rejects_mismatched_shapes():
    op = kernels.fused_adamw()
    w, m, v = tf.Variable(tf.ones([4])), tf.Variable(tf.zeros([4])), tf.Variable(tf.zeros([4]))
    one = tf.constant(1.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one shape"):
        op(var=w.handle, m=m.handle, v=v.handle, grad=tf.ones([5]), grad_scale=one, decay=one, lr=one,
           beta1=one, beta2=one, epsilon=one)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="scalar|rank"):
        op(var=w.handle, m=m.handle, v=v.handle, grad=tf.ones([4]), grad_scale=tf.ones([2]), decay=one, lr=one,
           beta1=one, beta2=one, epsilon=one)
    np.testing.assert_array_equal(w.numpy(), np.ones(4))  # nothing was written
    half = tf.Variable(tf.ones([4], tf.float16))
    with pytest.raises(tf.errors.InvalidArgumentError, match="float32"):
        op(var=half.handle, m=m.handle, v=v.handle, grad=tf.ones([4]), grad_scale=one, decay=one, lr=one,
           beta1=one, beta2=one, epsilon=one)


def test_a_failed_build_falls_back_to_the_stock_ops(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("CXX", "/bin/false")
    with pytest.raises(kernels.KernelBuildError, match="false exited with 1"):
        kernels.build("fused_adamw", cache_dir=str(tmp_path))
    assert list((tmp_path / "kernels").glob("*.so")) == []  # no half-written library is left behind
    with caplog.at_level(logging.WARNING, logger="hvd_pretrain.kernels"):
        assert kernels.load("fused_adamw", cache_dir=str(tmp_path)) is None
    assert "using TensorFlow's stock ops" in caplog.text


def test_concurrent_builds_compile_once(monkeypatch, tmp_path):
    """Ranks starting together: one compiles under the lock, the others wait and take its library."""
    import subprocess

    calls = []
    real_run = subprocess.run

    def counting_run(*args, **kwargs):
        calls.append(args[0])
        return real_run(*args, **kwargs)

    monkeypatch.setattr(kernels.subprocess, "run", counting_run)
    paths, errors = [], []

    def build():
        try:
            paths.append(kernels.build("fused_adamw", cache_dir=str(tmp_path)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=kernels.BUILD_TIMEOUT_S)
    assert not errors and len(paths) == 3 and len(set(paths)) == 1
    assert len(calls) == 1
    assert sorted(p.name for p in (tmp_path / "kernels").iterdir() if p.suffix == ".so") == [
        paths[0].split("/")[-1]]


def test_switch_turns_the_kernel_off(monkeypatch):
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    assert kernels.fused_adamw() is None
    monkeypatch.setenv(kernels.ENV_SWITCH, "1")
    assert kernels.fused_adamw() is not None


@pytest.mark.parametrize("accum_steps", [1, 2])
@pytest.mark.parametrize("clip_norm", [1e-2, 0.0], ids=["clipping", "no_clip"])
def test_trainer_steps_equal_with_and_without_the_kernel(monkeypatch, accum_steps, clip_norm):
    """The trainer's step (clip factor inside the update) gives the weights of the stock-op path."""
    from hvd_pretrain.models import build_pretrainer, preset
    from hvd_pretrain.tfcompat import keras
    from hvd_pretrain.train.accumulate import AccumulatingStep, LocalCommunicator
    from hvd_pretrain.train.config import TrainConfig
    from hvd_pretrain.train.optimization import make_optimizer

    results = []
    for fused in (True, False):
        _use_fused(monkeypatch, fused)
        keras.utils.set_random_seed(3)
        model = build_pretrainer(preset("tiny", vocab_size=100, max_position_embeddings=16))
        micro = [[synthetic_batch(2, seed=10 * s + i) for i in range(accum_steps)] for s in range(3)]
        model.loss_sums(micro[0][0], training=False)
        step = AccumulatingStep(model, make_optimizer(TrainConfig(num_train_steps=10, warmup_steps=2)),
                                LocalCommunicator(), accum_steps=accum_steps, clip_norm=clip_norm)
        norms = [step.step(m)["grad_norm"] for m in micro]
        results.append(([v.numpy() for v in model.trainable_variables], norms))
    (fused_weights, fused_norms), (stock_weights, stock_norms) = results
    assert fused_norms == stock_norms
    if clip_norm:
        assert min(fused_norms) > clip_norm  # every step was clipped
    for a, b in zip(fused_weights, stock_weights):
        np.testing.assert_array_equal(a, b)


def test_simd_flags_follow_the_cpu(tmp_path):
    with_avx2 = tmp_path / "avx2"
    with_avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n")
    without = tmp_path / "sse"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 sse4_2 avx\n")
    assert kernels.simd_flags(str(with_avx2)) == ["-mavx2", "-mfma"]
    assert kernels.simd_flags(str(without)) == []
    assert kernels.simd_flags(str(tmp_path / "missing")) == []
