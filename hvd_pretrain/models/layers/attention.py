"""Multi-head scaled dot-product self-attention."""

import functools
import math

from hvd_pretrain.models import ops
from hvd_pretrain.models.layers.building import build_sublayer
from hvd_pretrain.tfcompat import keras, tf


class MultiHeadSelfAttention(keras.layers.Layer):
    """Self-attention with query/key/value projections and an output projection.

    Kernels are plain [hidden, hidden] dense kernels (heads are split by
    reshaping), the layout of Google's BERT checkpoints; HF stores their
    transposes.

    Args:
      hidden_size: model width; must be divisible by num_heads.
      num_heads: number of attention heads.
      attention_dropout: dropout on the attention probabilities.
      initializer_range: stddev of the truncated normal kernel initializer.
    """

    def __init__(self, hidden_size, num_heads, attention_dropout=0.0, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError("model.hidden_size=%d is not divisible by model.num_heads=%d"
                             % (hidden_size, num_heads))
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        self.head_size = self.hidden_size // self.num_heads
        self.attention_dropout = float(attention_dropout)
        self.initializer_range = float(initializer_range)
        init = functools.partial(keras.initializers.TruncatedNormal, stddev=self.initializer_range)
        self.query = keras.layers.Dense(self.hidden_size, kernel_initializer=init(), name="query")
        self.key = keras.layers.Dense(self.hidden_size, kernel_initializer=init(), name="key")
        self.value = keras.layers.Dense(self.hidden_size, kernel_initializer=init(), name="value")
        self.output_dense = keras.layers.Dense(self.hidden_size, kernel_initializer=init(), name="output")
        self.dropout = keras.layers.Dropout(self.attention_dropout)

    def build(self, input_shape):
        for dense in (self.query, self.key, self.value, self.output_dense):
            build_sublayer(dense, [None, None, self.hidden_size])
        super().build(input_shape)

    def _split_heads(self, x):
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [batch, length, self.num_heads, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])  # [B, N, L, D]

    def call(self, hidden, bias=None, training=None, seed=None):
        """hidden [B, L, H]; bias broadcastable to [B, N, L, L] (0 keep, -1e4 drop).

        seed: an int [2] tensor keying the dropout mask (ops.seeded_dropout); None: Keras dropout.
        """
        q = self._split_heads(self.query(hidden))
        k = self._split_heads(self.key(hidden))
        v = self._split_heads(self.value(hidden))
        scores = tf.matmul(q, k, transpose_b=True) * tf.cast(1.0 / math.sqrt(self.head_size), q.dtype)
        if bias is not None:
            scores = scores + tf.cast(bias, scores.dtype)
        # Softmax in float32 so that half-precision compute stays stable.
        probs = tf.cast(tf.nn.softmax(tf.cast(scores, tf.float32), axis=-1), v.dtype)
        if training and seed is not None:
            probs = ops.seeded_dropout(probs, self.attention_dropout, seed, 0)
        else:
            probs = self.dropout(probs, training=training)
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])  # [B, L, N, D]
        batch, length = tf.shape(hidden)[0], tf.shape(hidden)[1]
        context = tf.reshape(context, [batch, length, self.hidden_size])
        return self.output_dense(context)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_heads=self.num_heads,
                      attention_dropout=self.attention_dropout, initializer_range=self.initializer_range)
        return config
