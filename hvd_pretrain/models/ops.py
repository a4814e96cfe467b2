"""Small pure tensor functions used by the pretrainers.

Each takes and returns tensors; none owns variables.
"""

from hvd_pretrain.tfcompat import tf


def activation(name):
    """The activation function for a config's `hidden_act`."""
    if name == "gelu":
        return lambda x: tf.nn.gelu(x, approximate=False)
    if name == "gelu_new":
        return lambda x: tf.nn.gelu(x, approximate=True)
    if name == "relu":
        return tf.nn.relu
    if name == "tanh":
        return tf.math.tanh
    if name == "silu":
        return tf.nn.silu
    raise ValueError("model.hidden_act=%r is unknown" % (name,))


def seeded_dropout(x, rate, seed, salt):
    """Dropout whose mask is a pure function of (seed, salt): the same mask every time it is computed.

    x: tensor; rate: drop probability; seed: int [2] tensor (one per forward pass, see
    TransformerEncoder); salt: int telling this dropout site from the others. Kept values are scaled
    by 1 / (1 - rate), as in keras.layers.Dropout. Recomputing a block in backward (--recompute=block)
    then drops exactly the units the forward pass dropped.
    """
    if not rate:
        return x
    site = tf.random.experimental.stateless_fold_in(seed, salt)
    return tf.nn.experimental.stateless_dropout(x, rate=rate, seed=site)


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
    example_seeds: optional [batch, 2] int32, one stateless seed per example (evaluation: the sample of an
    example depends on its seed only, not on the batch it is in, and no random state is consumed).
    """
    logits = tf.stop_gradient(tf.cast(logits, tf.float32))
    if example_seeds is not None:
        uniform = tf.map_fn(lambda s: tf.random.stateless_uniform(tf.shape(logits)[1:], seed=s, minval=1e-9,
                                                                  maxval=1.0),
                            tf.cast(example_seeds, tf.int32), fn_output_signature=tf.float32)
    else:
        uniform = tf.random.uniform(tf.shape(logits), minval=1e-9, maxval=1.0, seed=seed)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    return tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)


def sparse_ce_sum(logits, labels, weights=None):
    """Sum over targets of softmax cross-entropy (float32), optionally weighted."""
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))
    if weights is not None:
        losses = losses * tf.cast(weights, tf.float32)
    return tf.reduce_sum(losses)


def correct_sum(logits, labels, weights=None):
    """Sum of (argmax == label), optionally weighted; float32."""
    hit = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), tf.cast(labels, tf.int32)),
                  tf.float32)
    if weights is not None:
        hit = hit * tf.cast(weights, tf.float32)
    return tf.reduce_sum(hit)


def sentence_labels(labels):
    """next_sentence_labels as [B] whether stored as [B] or [B, 1]."""
    return tf.reshape(tf.cast(labels, tf.int32), [-1])
