"""The model's hand-written kernels against the TensorFlow/Keras ops they replace: GELU and LayerNorm
with written-out gradients, dropout on 16-bit random integers, softmax cross-entropy with a
written-out gradient, and embedding lookups that gather from a tensor, never from the variable."""

import math

import numpy as np
import pytest

from hvd_pretrain import kernels
from hvd_pretrain.models import ops
from hvd_pretrain.models.layers import LayerNorm
from hvd_pretrain.tfcompat import keras, tf


def values_and_gradients(fn, x, variables=()):
    upstream = tf.random.stateless_normal(x.shape, seed=[7, 8])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        total = tf.reduce_sum(y * upstream)
    return [y] + tape.gradient(total, [x] + list(variables))


@pytest.fixture(params=["kernel", "composed"])
def gelu_path(request, monkeypatch):
    """Each GELU test runs twice: with our CPU kernel (hvd_pretrain/kernels/gelu.cc) and with TensorFlow's
    ops, the path on a GPU, under XLA, for other dtypes or without the kernel."""
    monkeypatch.setenv(kernels.ENV_SWITCH, "1" if request.param == "kernel" else "0")
    assert (kernels.gelu() is not None) == (request.param == "kernel")
    return request.param


def test_gelu_and_its_gradient_equal_tf_nn_gelu(gelu_path):
    x = tf.concat([tf.linspace(-9.0, 9.0, 181), tf.random.stateless_normal([1000], seed=[1, 2]) * 3.0], 0)
    ours = values_and_gradients(ops.gelu, x)
    reference = values_and_gradients(lambda t: tf.nn.gelu(t, approximate=False), x)
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    # Hand values: gelu(1) = Phi(1) and gelu'(0) = 1/2.
    assert float(ours[0][90 + 10]) == pytest.approx(0.5 * (1 + math.erf(math.sqrt(0.5))), rel=1e-6)
    assert float(ops.activation("gelu")(tf.constant(1.0))) == pytest.approx(0.8413447, rel=1e-6)
    assert float(values_and_gradients(lambda t: ops.gelu(t) * 2.0, tf.constant([0.0]))[1][0]) == pytest.approx(
        float(2.0 * tf.random.stateless_normal([1], seed=[7, 8])[0] * 0.5), rel=1e-6)


def test_gelu_of_a_feed_forward_sized_tensor_and_of_extreme_values(gelu_path):
    # [tokens, 4H] as in BERT's feed-forward layer (the kernel splits it over threads), plus the
    # values where erf saturates or the input is not finite; tf.nn.gelu's ops give the reference.
    special = tf.constant([0.0, -0.0, 1e-30, -1e-30, 6.0, -6.0, 40.0, -40.0, float("inf"), -float("inf"),
                           float("nan"), 3.4e38])
    x = tf.concat([tf.reshape(tf.random.stateless_normal([512, 1024], seed=[3, 4]) * 4.0, [-1]), special], 0)
    ours = values_and_gradients(ops.gelu, x)
    reference = values_and_gradients(lambda t: tf.nn.gelu(t, approximate=False), x)
    for a, b in zip(ours, reference):
        a, b = a.numpy(), b.numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        finite = np.isfinite(a) & np.isfinite(b)
        np.testing.assert_array_equal(a[~finite & ~np.isnan(a)], b[~finite & ~np.isnan(b)])
        # In the left tail 1 + erf(x / sqrt(2)) cancels (both of our paths; tf.nn.gelu uses erfc), so the
        # absolute error is that of float32 near 1 times |x|: about 1e-6 at x = -20.
        np.testing.assert_allclose(a[finite], b[finite], rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(ours[0].numpy()[-12:-8], [0.0, 0.0, 5e-31, -5e-31], rtol=1e-6, atol=0)
    assert ours[0].numpy()[-6:-3].tolist() == [40.0, 0.0, float("inf")]  # gelu(40), gelu(-40), gelu(inf)


def test_gelu_kernel_runs_for_float32_on_cpu_and_not_under_xla_or_for_float16(monkeypatch):
    monkeypatch.setenv(kernels.ENV_SWITCH, "1")
    x = tf.random.stateless_normal([6, 32], seed=[5, 6])
    upstream = tf.random.stateless_normal([6, 32], seed=[7, 8])  # drawn here: XLA's generator differs

    def value_and_gradient(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = ops.gelu(t)
        return y, tape.gradient(y, t, output_gradients=upstream)

    results = {}
    for jit in (False, True):
        fn = tf.function(value_and_gradient, jit_compile=jit)
        results[jit] = fn(x)
        types = op_types(fn.get_concrete_function(x).graph)
        assert ("HvdGelu" in types and "HvdGeluGrad" in types) == (not jit), types
    for a, b in zip(results[False], results[True]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    half = tf.function(lambda t: ops.gelu(t))
    assert "HvdGelu" not in op_types(half.get_concrete_function(tf.cast(x, tf.float16)).graph)
    np.testing.assert_allclose(half(tf.cast(x, tf.float16)).numpy(), results[False][0].numpy(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("shape", [[3, 5, 16], [7, 32], [2, 2, 3, 8]])
def test_layer_norm_and_its_gradients_equal_keras(shape, monkeypatch):
    calls = []
    written_out = ops.layer_norm
    monkeypatch.setattr(ops, "layer_norm", lambda *a: calls.append(1) or written_out(*a))
    x = tf.random.stateless_normal(shape, seed=[3, 4]) * 4.0 + 2.0
    ours, keras_ln = LayerNorm(epsilon=1e-12), keras.layers.LayerNormalization(epsilon=1e-12)
    ours.build(x.shape)
    keras_ln.build(x.shape)
    ours.set_weights([np.linspace(0.5, 2.0, shape[-1]).astype(np.float32),
                      np.linspace(-1.0, 1.0, shape[-1]).astype(np.float32)])
    keras_ln.set_weights(ours.get_weights())
    assert [v.name for v in ours.weights] == [v.name for v in keras_ln.weights]
    got = values_and_gradients(ours, x, ours.trainable_variables)
    want = values_and_gradients(keras_ln, x, keras_ln.trainable_variables)
    assert len(got) == 4 and calls == [1]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=2e-5)


def test_layer_norm_of_a_constant_row_is_beta_with_finite_gradients():
    x = tf.fill([2, 8], 3.0)
    gamma, beta = tf.fill([8], 2.0), tf.range(8, dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([x, gamma, beta])
        y = ops.layer_norm(x, gamma, beta, 1e-12)
    np.testing.assert_allclose(y.numpy(), np.tile(np.arange(8, dtype=np.float32), [2, 1]))
    for grad in tape.gradient(y, [x, gamma, beta]):
        assert np.all(np.isfinite(grad.numpy()))


def test_layer_norm_outside_float32_is_keras_own(monkeypatch):
    calls = []
    monkeypatch.setattr(ops, "layer_norm", lambda *a: calls.append(1))
    layer = LayerNorm(epsilon=1e-6, dtype="mixed_float16")
    out = layer(tf.ones([2, 4], tf.float16))
    assert out.dtype == tf.float16 and not calls
    assert layer.gamma.dtype == tf.float32


def test_dropout_drops_the_quantised_rate_and_keeps_the_mean():
    n = 1000 * 999  # odd: the last 32-bit draw is used for one element only
    x = tf.ones([1000, 999])
    out = ops.seeded_dropout(x, 0.1, tf.constant([11, 12]), 3).numpy()
    threshold = round(0.1 * ops.DROPOUT_LEVELS)
    rate = threshold / ops.DROPOUT_LEVELS
    assert abs(rate - 0.1) < 1e-5
    dropped = float(np.mean(out == 0))
    assert abs(dropped - rate) < 4 * math.sqrt(rate * (1 - rate) / n)  # four standard errors
    kept = out[out != 0]
    np.testing.assert_allclose(kept, ops.DROPOUT_LEVELS / (ops.DROPOUT_LEVELS - threshold), rtol=1e-6)
    assert abs(float(out.mean()) - 1.0) < 4 * math.sqrt(rate / (1 - rate) / n)


def test_dropout_mask_is_a_function_of_seed_and_salt_and_the_gradient_uses_it():
    x = tf.random.stateless_normal([4, 33, 7], seed=[5, 6])
    seed = tf.constant([21, 22])
    a, b = ops.seeded_dropout(x, 0.3, seed, 1), ops.seeded_dropout(x, 0.3, seed, 1)
    c = ops.seeded_dropout(x, 0.3, seed, 2)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.mean(a.numpy() != c.numpy()) > 0.2
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = ops.seeded_dropout(x, 0.3, seed, 1)
    grad = tape.gradient(y, x).numpy()
    scale = ops.DROPOUT_LEVELS / (ops.DROPOUT_LEVELS - round(0.3 * ops.DROPOUT_LEVELS))
    np.testing.assert_allclose(grad, np.where(a.numpy() != 0, scale, 0.0), rtol=1e-6)
    assert ops.seeded_dropout(tf.zeros([0, 3]), 0.1, seed, 1).shape == (0, 3)


def test_dropout_rates_at_the_edges():
    x = tf.ones([64, 64])
    seed = tf.constant([1, 1])
    assert ops.seeded_dropout(x, 0.0, seed, 0) is x
    np.testing.assert_array_equal(ops.seeded_dropout(x, 1e-7, seed, 0).numpy(), x.numpy())
    heavy = ops.seeded_dropout(x, 0.99, seed, 0).numpy()
    assert 0.0 < float(np.mean(heavy != 0)) < 0.05
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="dropout rate"):
            ops.seeded_dropout(x, bad, seed, 0)
    half = ops.seeded_dropout(tf.ones([4, 4], tf.float16), 0.5, seed, 0)
    assert half.dtype == tf.float16 and set(np.unique(half.numpy())) <= {0.0, 2.0}



@pytest.fixture(params=["kernel", "composed"])
def xent_path(request, monkeypatch):
    """Each cross-entropy test runs twice: with our CPU kernel (hvd_pretrain/kernels/softmax_xent.cc) and
    with TensorFlow's ops, the path on a GPU, under XLA or without the kernel."""
    monkeypatch.setenv(kernels.ENV_SWITCH, "1" if request.param == "kernel" else "0")
    assert (kernels.softmax_xent() is not None) == (request.param == "kernel")
    return request.param


def loss_and_gradient(fn, logits, upstream):
    with tf.GradientTape() as tape:
        tape.watch(logits)
        losses = fn(logits)
        total = tf.reduce_sum(losses * upstream)
    return losses, tape.gradient(total, logits)


@pytest.mark.parametrize("shape, classes", [([7], 5), ([3, 4], 11), ([160], 30522), ([6], 2)])
def test_cross_entropy_and_its_gradient_equal_tensorflows(shape, classes, xent_path):
    rng = np.random.RandomState(classes)
    logits = tf.constant(rng.standard_normal(shape + [classes]).astype(np.float32) * 5.0)
    labels = tf.constant(rng.randint(0, classes, shape).astype(np.int32))
    upstream = tf.constant(rng.standard_normal(shape).astype(np.float32))
    reference = loss_and_gradient(
        lambda x: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x), logits, upstream)
    ours = loss_and_gradient(lambda x: ops.softmax_cross_entropy(x, labels), logits, upstream)
    assert ours[0].shape == shape and ours[0].dtype == tf.float32
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=2e-6)


def test_cross_entropy_by_hand_and_at_extreme_logits(xent_path):
    # Two classes with logits (0, log 3): p = (1/4, 3/4); the loss of label 0 is log 4, the gradient p - e_0.
    loss, grad = loss_and_gradient(lambda x: ops.softmax_cross_entropy(x, tf.constant([0])),
                                   tf.constant([[0.0, math.log(3.0)]]), tf.constant([2.0]))
    assert float(loss[0]) == pytest.approx(math.log(4.0), rel=1e-6)
    np.testing.assert_allclose(grad.numpy(), [[-1.5, 1.5]], rtol=1e-6)
    # Logits far beyond exp's float32 range stay finite: the row maximum is taken out first.
    big = tf.constant([[1e4, -1e4, 0.0], [5e3, 5e3, 5e3]])
    loss = ops.softmax_cross_entropy(big, tf.constant([1, 2])).numpy()
    np.testing.assert_allclose(loss, [2e4, math.log(3.0)], rtol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError):
        ops.softmax_cross_entropy(tf.zeros([2, 3]), tf.constant([1, 3]))


def test_cross_entropy_and_hits_share_tf_argmax_including_ties(xent_path):
    rng = np.random.RandomState(5)
    logits = rng.standard_normal([4, 6, 9]).astype(np.float32)
    logits[0, 0] = 1.0  # a tie everywhere: tf.argmax takes the first index, so only label 0 is a hit
    logits[0, 1, [2, 7]] = 9.0  # a tie at the top between 2 and 7: 2 is the prediction
    labels = rng.randint(0, 9, [4, 6]).astype(np.int32)
    labels[0, 0], labels[0, 1], labels[0, 2] = 3, 7, 0
    weights = rng.randint(0, 2, [4, 6]).astype(np.float32)
    weights[0, :2] = 1.0
    loss, hits = ops.cross_entropy_and_hits(tf.constant(logits), tf.constant(labels), tf.constant(weights))
    expected_hits = ((np.argmax(logits, -1) == labels) * weights).sum()
    expected_loss = (tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits).numpy()
                     * weights).sum()
    assert float(hits) == expected_hits
    assert float(loss) == pytest.approx(expected_loss, rel=1e-6)
    # The tied rows by hand: label 3 of an all-equal row and label 7 of the (2, 7) tie are misses.
    row_hits = ops.cross_entropy_and_hits(tf.constant(logits[0, :2]), tf.constant([3, 2]))[1]
    assert float(row_hits) == 1.0


def test_cross_entropy_of_a_row_with_nan_is_nan(xent_path):
    logits = tf.constant([[0.0, float("nan"), 1.0], [0.0, 1.0, 2.0], [float("nan")] * 3])
    loss = ops.softmax_cross_entropy(logits, tf.constant([0, 2, 1])).numpy()
    assert np.isnan(loss[0]) and np.isnan(loss[2])
    assert loss[1] == pytest.approx(math.log(1 + math.e + math.e ** 2) - 2.0, rel=1e-6)


def test_cross_entropy_kernel_runs_on_cpu_and_xla_takes_tensorflows_ops(monkeypatch):
    monkeypatch.setenv(kernels.ENV_SWITCH, "1")
    rng = np.random.RandomState(2)
    logits = tf.constant(rng.standard_normal([5, 40]).astype(np.float32))
    labels = tf.constant(rng.randint(0, 40, [5]).astype(np.int32))
    results = {}
    for jit in (False, True):
        fn = tf.function(lambda x: loss_and_gradient(lambda z: ops.softmax_cross_entropy(z, labels), x,
                                                     tf.ones([5])), jit_compile=jit)
        results[jit] = fn(logits)
        types = op_types(fn.get_concrete_function(logits).graph)
        assert ("HvdSoftmaxXent" in types) == (not jit), types
    for a, b in zip(results[False], results[True]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)

def op_types(graph):
    """Every op type in a graph and in the functions it calls (conditionals, custom gradients)."""
    types = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():  # noqa: SLF001 - a FuncGraph's called functions
        types |= {node.op for node in function.definition.node_def}
    return types


@pytest.mark.parametrize("name", ["tiny", "albert-tiny", "electra-tiny"])
def test_a_training_step_never_gathers_from_a_variable(name):
    # tf.gather on a resource variable (ResourceGather) switches the variable to copy-on-read: every
    # later read of the word embeddings, and every optimizer update of them, would copy the table.
    from hvd_pretrain.models import build_pretrainer, preset

    cfg = preset(name, vocab_size=97, max_position_embeddings=16)
    model = build_pretrainer(cfg).build_for()
    rng = np.random.RandomState(3)
    features = {"input_ids": tf.constant(rng.randint(5, 97, [2, 8]), tf.int32),
                "input_mask": tf.ones([2, 8], tf.int32), "segment_ids": tf.zeros([2, 8], tf.int32),
                "masked_lm_positions": tf.constant([[1, 2], [3, 4]], tf.int32),
                "masked_lm_ids": tf.constant([[7, 8], [9, 10]], tf.int32),
                "masked_lm_weights": tf.ones([2, 2], tf.float32),
                "next_sentence_labels": tf.zeros([2, 1], tf.int32)}

    @tf.function
    def step(features):
        with tf.GradientTape() as tape:
            total = tf.add_n([tf.reduce_sum(v) for v in model.loss_sums(features, training=True).values()])
        return tape.gradient(total, model.trainable_variables)

    types = op_types(step.get_concrete_function(features).graph)
    assert "MatMul" in types or "BatchMatMulV2" in types or "Einsum" in types  # the walk sees the model
    assert "GatherV2" in types  # the word embeddings are gathered, from a tensor
    assert not {t for t in types if t.startswith("Resource") and "Gather" in t}
    grads = step(features)
    words = [g for g, v in zip(grads, model.trainable_variables) if "word_embeddings" in v.name]
    assert words and all(isinstance(g, (tf.Tensor, tf.IndexedSlices)) for g in words)
