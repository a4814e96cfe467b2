"""Small pure tensor functions used by the pretrainers.

Each takes and returns tensors; none owns variables.
"""

import math

from hvd_pretrain import kernels
from hvd_pretrain.tfcompat import in_xla_context, tf

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu(x):
    """Exact GELU, x * Phi(x) with Phi the standard normal CDF (Hendrycks & Gimpel 2016,
    arXiv:1606.08415; BERT's `gelu`, tf.nn.gelu(approximate=False)), with its gradient written out.

    x: float tensor of any shape -> same shape and dtype. The gradient is Phi(x) + x * phi(x) (phi the
    normal density). For float32 on CPU our kernel (hvd_pretrain/kernels/gelu.cc) makes one pass over
    the tensor each way; on a GPU, inside XLA, for other dtypes or where the kernel is unavailable,
    TensorFlow's ops compute the same (13 graph ops forward and backward where tf.nn.gelu and its
    automatic gradient take 19). Both equal tf.nn.gelu and its gradient to float rounding.
    """
    module = _gelu_kernel(x)
    if module is not None:
        return _kernel_gelu(module, x)
    return _composed_gelu(x)


def _gelu_kernel(x):
    return _cpu_kernel(kernels.gelu) if x.dtype == tf.float32 else None


def _cpu_kernel(load):
    """load() (one of hvd_pretrain.kernels' loaders) where our CPU kernels can run: not inside an XLA
    cluster, not on a machine with a GPU. None elsewhere, and where the kernel is unavailable."""
    if in_xla_context() or tf.config.list_logical_devices("GPU"):
        return None
    return load()


def _kernel_gelu(module, x):
    @tf.custom_gradient
    def forward(x):
        def grad(dy):
            return module.hvd_gelu_grad(x, dy)

        return module.hvd_gelu(x), grad

    return forward(x)


@tf.custom_gradient
def _composed_gelu(x):
    cdf = 0.5 * (1.0 + tf.math.erf(x * tf.cast(_SQRT_HALF, x.dtype)))

    def grad(dy):
        return dy * (cdf + x * (tf.cast(_INV_SQRT_2PI, x.dtype) * tf.exp(-0.5 * tf.square(x))))

    return x * cdf, grad


def layer_norm(x, gamma, beta, epsilon):
    """LayerNorm over the last axis (Ba et al. 2016, arXiv:1607.06450), with its gradient written out.

    x [..., H] float; gamma, beta [H] of x's dtype; epsilon: added to the variance -> [..., H].
    y = (x - mean) / sqrt(var + epsilon) * gamma + beta, mean and var over the last axis (biased
    variance, as keras.layers.LayerNormalization and Google's BERT). Backward is
    dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sqrt(var + epsilon) with g = dy * gamma, and the
    sums of dy * x_hat and dy over every axis but the last for gamma and beta. Forward and the input's
    gradient take 24 graph ops where Keras' LayerNormalization and its automatic gradient take 32.
    Equal to Keras' LayerNormalization to float rounding.
    """

    @tf.custom_gradient
    def normalize(x, gamma, beta):
        mean, variance = tf.nn.moments(x, [-1], keepdims=True)
        inv = tf.math.rsqrt(variance + tf.cast(epsilon, x.dtype))
        normed = (x - mean) * inv

        def grad(dy):
            scaled = dy * gamma
            dx = inv * (scaled - tf.reduce_mean(scaled, -1, keepdims=True)
                        - normed * tf.reduce_mean(scaled * normed, -1, keepdims=True))
            outer = tf.range(tf.rank(dy) - 1)
            return dx, tf.reduce_sum(dy * normed, outer), tf.reduce_sum(dy, outer)

        return normed * gamma + beta, grad

    return normalize(x, gamma, beta)


def activation(name):
    """The activation function for a config's `hidden_act`."""
    if name == "gelu":
        return gelu
    if name == "gelu_new":
        return lambda x: tf.nn.gelu(x, approximate=True)
    if name == "relu":
        return tf.nn.relu
    if name == "tanh":
        return tf.math.tanh
    if name == "silu":
        return tf.nn.silu
    raise ValueError("model.hidden_act=%r is unknown" % (name,))


# Keys the training-time random streams apart (mixed into the run seed by `step_seed`).
DROPOUT_STREAM = 0x64726f70


def step_seed(run_seed, step, micro_batch, rank):
    """The int32 [2] seed of one training forward pass: a pure function of what the run already knows.

    run_seed: the run's --seed (a Python int, fixed for the run); step: the optimizer step counter
    (optimizer.iterations, saved in every checkpoint); micro_batch: the micro-batch's index within the
    step; rank: the Horovod rank. The last three may be tensors, so a traced (tf.function, XLA) step
    reads them when it runs rather than when it is traced. Every dropout mask and ELECTRA's generator
    samples are derived from this seed (stateless_fold_in), so nothing random needs saving: a resumed
    run computes the masks the uninterrupted run computed, and each step, micro-batch and rank gets
    its own. Seeds follow the counter-based stateless scheme of Salmon et al. 2011 (Philox, "Parallel
    random numbers: as easy as 1, 2, 3") that TensorFlow's stateless ops implement.
    """
    seed = tf.constant([int(run_seed) % (2 ** 31 - 1), DROPOUT_STREAM], tf.int32)
    for data in (step, micro_batch, rank):
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(data, tf.int32))
    return seed


def split_seed(seed, salt):
    """A seed for one consumer of `seed` (int32 [2]): distinct salts give independent streams."""
    return tf.random.experimental.stateless_fold_in(seed, salt)


def fresh_seed():
    """An int32 [2] seed drawn from TensorFlow's global random stream, for training forward passes
    that were given no seed (direct model calls, fine-tuning). That stream is not checkpointed: the
    trainer always passes `step_seed` instead."""
    return tf.random.uniform([2], maxval=2 ** 31 - 1, dtype=tf.int32)


DROPOUT_LEVELS = 65536  # dropout compares 16-bit random integers with a threshold


def seeded_dropout(x, rate, seed, salt):
    """Dropout whose mask is a pure function of (seed, salt): the same mask every time it is computed.

    x: float tensor of any shape -> same shape and dtype; rate: drop probability in [0, 1); seed: int
    [2] tensor (one per forward pass, see TransformerEncoder); salt: int telling this dropout site from
    the others. Recomputing a block in backward (--recompute=block) then drops exactly the units the
    forward pass dropped.

    An element is dropped when a 16-bit random integer falls below t = round(rate * 65536): each 32-bit
    output of the stateless Philox generator decides two elements, half the random numbers a
    float-uniform mask (tf.nn.dropout, keras.layers.Dropout) draws. The drop probability is t / 65536
    (t at most 65535), within 7.7e-6 of `rate` (0.1 -> 0.1000061) for every rate up to 1 - 1/65536, and
    kept values are scaled by 65536 / (65536 - t), so the expected output is x exactly (Srivastava et
    al. 2014, inverted dropout). Rates below 1 / 131072 drop nothing. Raises ValueError for a rate
    outside [0, 1).
    """
    if not rate:
        return x
    if not 0.0 < rate < 1.0:
        raise ValueError("dropout rate must be in [0, 1), got %r" % (rate,))
    threshold = min(int(round(rate * DROPOUT_LEVELS)), DROPOUT_LEVELS - 1)
    if threshold == 0:
        return x
    shape, size = tf.shape(x), tf.size(x)
    words = tf.random.stateless_uniform([(size + 1) // 2], seed=split_seed(seed, salt), minval=None,
                                        maxval=None, dtype=tf.uint32)
    halves = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
    keep = tf.reshape(halves >= threshold, shape)
    scale = tf.cast(DROPOUT_LEVELS / (DROPOUT_LEVELS - threshold), x.dtype)
    return tf.where(keep, x * scale, tf.zeros([], x.dtype))


def embedding_lookup(table, ids):
    """The rows of an embedding table: table [V, E] (a variable or a tensor), ids [...] int -> [..., E].

    A variable is read as one dense tensor first, and the rows are gathered from that tensor. Gathering
    straight from a resource variable (`ResourceGather`, what `tf.gather` does on a variable) puts the
    variable in TensorFlow's copy-on-read mode for the rest of the process (`EnsureSparseVariableAccess`
    in tensorflow/core/kernels/training_op_helpers.h): from then on every dense read copies the whole
    table, and so does every in-place optimizer update (62 MB each for BERT's 30,522 x 512 word
    embeddings, which the MLM head reads again as its output weights). The values and the gradient (an
    IndexedSlices for the table) are the same either way.
    """
    return tf.gather(tf.convert_to_tensor(table), tf.cast(ids, tf.int32))


def gather_positions(sequence, positions):
    """sequence [B, L, ...], positions [B, P] int -> [B, P, ...]."""
    return tf.gather(sequence, tf.cast(positions, tf.int32), batch_dims=1)


def scatter_positions(ids, positions, values, weights):
    """Replace ids[b, positions[b, p]] by values[b, p] wherever weights[b, p] > 0.

    ids [B, L] int, positions/values [B, P] int, weights [B, P] float. Padding
    slots (weight 0) leave ids untouched even though their position is 0.
    """
    ids = tf.cast(ids, tf.int32)
    length = tf.shape(ids)[1]
    active = tf.cast(weights > 0, tf.int32)
    hits = tf.one_hot(tf.cast(positions, tf.int32), length, dtype=tf.int32) * active[:, :, None]  # [B, P, L]
    count = tf.reduce_sum(hits, axis=1)  # [B, L]
    summed = tf.reduce_sum(hits * tf.cast(values, tf.int32)[:, :, None], axis=1)
    return tf.where(count > 0, summed // tf.maximum(count, 1), ids)


def attention_bias(input_mask, dtype):
    """[B, L] 1/0 mask -> additive bias [B, 1, 1, L]: 0 for tokens, -10000 for padding."""
    mask = tf.cast(input_mask, dtype)[:, None, None, :]
    return (1.0 - mask) * tf.cast(-10000.0, dtype)


def gumbel_argmax(logits, seed=None, example_seeds=None):
    """One sample per row from softmax(logits) at temperature 1 (Gumbel-max).

    The logits are put under stop-gradient: sampling is not differentiated.
    seed: int32 [2], the stateless seed of the whole batch's samples (training: derived from
    `step_seed`, so a resumed run samples what the uninterrupted run sampled).
    example_seeds: optional [batch, 2] int32, one stateless seed per example (evaluation: the sample of an
    example depends on its seed only, not on the batch it is in). With neither, the samples are drawn
    from TensorFlow's global random stream.
    """
    logits = tf.stop_gradient(tf.cast(logits, tf.float32))
    if example_seeds is not None:
        uniform = tf.map_fn(lambda s: tf.random.stateless_uniform(tf.shape(logits)[1:], seed=s, minval=1e-9,
                                                                  maxval=1.0),
                            tf.cast(example_seeds, tf.int32), fn_output_signature=tf.float32)
    elif seed is not None:
        uniform = tf.random.stateless_uniform(tf.shape(logits), seed=seed, minval=1e-9, maxval=1.0)
    else:
        uniform = tf.random.uniform(tf.shape(logits), minval=1e-9, maxval=1.0)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    return tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)


def softmax_cross_entropy(logits, labels):
    """Softmax cross-entropy of integer class labels, with its gradient written out.

    logits [..., C] float; labels [...] int in [0, C) -> [...] float32 losses,
    log(sum_j exp(logits_j)) - logits_label, computed as log(sum_j exp(logits_j - top)) -
    (logits_label - top) with top the row's largest logit, so that no exp overflows and large logits do
    not cancel. The gradient with respect to the logits is (softmax(logits) - one_hot(label)) * dy; the
    labels get none. Equal to tf.nn.sparse_softmax_cross_entropy_with_logits and its gradient to float
    rounding, in less time on CPU. On CPU our kernel computes it (hvd_pretrain/kernels/softmax_xent.cc:
    two reads of each row forward, nothing of the logits' size written, and the gradient recomputed
    from the logits backward): forward and backward of BERT's MLM loss at batch 8 with 20 predictions
    ([160, 30522] logits) take 8.2 ms, TensorFlow's fused kernel 29.6 ms (its exp and reductions run on
    one thread). Elsewhere (a GPU, XLA, no kernel) TensorFlow's element-wise ops compute it, reusing
    the forward pass's exp(logits - top) and row sums for the gradient: 11.5-14.0 ms on this CPU.

    Errors: on CPU a label outside [0, C) raises InvalidArgumentError; on GPU it is not checked, as
    with TensorFlow's own kernel. Non-finite logits give a non-finite loss.
    """
    return _cross_entropy_and_prediction(tf.cast(logits, tf.float32), tf.cast(labels, tf.int32))[0]


def cross_entropy_and_hits(logits, labels, weights=None):
    """The summed softmax cross-entropy and the summed hits (argmax == label) of one classifier.

    logits [..., C] float; labels [...] int; weights [...] or None -> (loss sum, hit sum), float32
    scalars, each term multiplied by its weight. The loss is `softmax_cross_entropy`'s. The row's
    largest logit, which the loss needs, is read at the argmax (first index of the largest logit, as
    tf.argmax), so the accuracy costs no pass over the logits of its own.
    """
    labels = tf.cast(labels, tf.int32)
    losses, predicted = _cross_entropy_and_prediction(tf.cast(logits, tf.float32), labels)
    hits = tf.cast(tf.equal(predicted, labels), tf.float32)
    if weights is not None:
        weights = tf.cast(weights, tf.float32)
        losses, hits = losses * weights, hits * weights
    return tf.reduce_sum(losses), tf.reduce_sum(hits)


def _cross_entropy_and_prediction(logits, labels):
    """logits [..., C] float32, labels [...] int32 -> (losses [...] float32, argmax [...] int32).

    On CPU our kernel (hvd_pretrain/kernels/softmax_xent.cc) computes both without writing exp(logits -
    top); on a GPU, inside XLA, or where the kernel is unavailable, TensorFlow's ops compute the same.
    """
    module = _xent_kernel()
    if module is not None:
        return _kernel_cross_entropy(module, logits, labels)
    return _composed_cross_entropy(logits, labels)


def _xent_kernel():
    return _cpu_kernel(kernels.softmax_xent)


def _kernel_cross_entropy(module, logits, labels):
    shape = tf.shape(labels)

    @tf.custom_gradient
    def rows_cross_entropy(rows, flat):
        losses, predicted, top, total = module.hvd_softmax_xent(rows, flat)

        def grad(dy, *_):  # the argmax output has no gradient
            return module.hvd_softmax_xent_grad(rows, flat, top, total, dy), None

        return (losses, predicted), grad

    rows = tf.reshape(logits, [-1, tf.shape(logits)[-1]])
    losses, predicted = rows_cross_entropy(rows, tf.reshape(labels, [-1]))
    return tf.reshape(losses, shape), tf.reshape(predicted, shape)


@tf.custom_gradient
def _composed_cross_entropy(logits, labels):
    shape = tf.shape(labels)
    rows = tf.reshape(logits, [-1, tf.shape(logits)[-1]])
    flat = tf.reshape(labels, [-1])
    predicted = tf.argmax(rows, axis=-1, output_type=tf.int32)
    top = tf.gather(rows, predicted[:, None], batch_dims=1)
    exp = tf.exp(rows - top)
    total = tf.reduce_sum(exp, axis=-1, keepdims=True)
    picked = tf.gather(rows, flat[:, None], batch_dims=1)
    losses = tf.reshape(tf.math.log(total) - (picked - top), shape)

    def grad(dy, *_):  # the argmax output has no gradient
        dy = tf.reshape(dy, [-1, 1])
        index = tf.stack([tf.range(tf.shape(flat)[0]), flat], axis=1)
        drows = tf.tensor_scatter_nd_sub(exp * (dy / total), index, dy[:, 0])
        return tf.reshape(drows, tf.shape(logits)), None

    return (losses, tf.reshape(predicted, shape)), grad


def sentence_labels(labels):
    """next_sentence_labels as [B] whether stored as [B] or [B, 1]."""
    return tf.reshape(tf.cast(labels, tf.int32), [-1])
