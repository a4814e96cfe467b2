"""The two sub-layers of a post-LayerNorm transformer block, and the block.

The sub-layers are separate objects so that an encoder can share either or
both of them across depth (ALBERT's `all`, `ffn` and `attention` modes): a
TransformerBlock owns no variables of its own, it composes two sub-layers
that may be reused by other blocks.
"""

import functools

from hvd_pretrain.models import ops
from hvd_pretrain.models.layers.attention import MultiHeadSelfAttention
from hvd_pretrain.models.layers.building import build_sublayer
from hvd_pretrain.models.layers.normalization import LayerNorm
from hvd_pretrain.tfcompat import keras, tf


class AttentionSublayer(keras.layers.Layer):
    """LayerNorm(x + Dropout(SelfAttention(x))).

    Args:
      hidden_size, num_heads, attention_dropout, initializer_range: see MultiHeadSelfAttention.
      hidden_dropout: dropout on the attention output before the residual.
      layer_norm_eps: LayerNorm epsilon.
    """

    def __init__(self, hidden_size, num_heads, hidden_dropout=0.0, attention_dropout=0.0,
                 initializer_range=0.02, layer_norm_eps=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        self.hidden_dropout = float(hidden_dropout)
        self.attention_dropout = float(attention_dropout)
        self.initializer_range = float(initializer_range)
        self.layer_norm_eps = float(layer_norm_eps)
        self.attention = MultiHeadSelfAttention(self.hidden_size, self.num_heads, self.attention_dropout,
                                                self.initializer_range, name="self_attention")
        self.dropout = keras.layers.Dropout(self.hidden_dropout)
        self.layer_norm = LayerNorm(epsilon=self.layer_norm_eps, name="layer_norm")

    def build(self, input_shape):
        build_sublayer(self.attention, [None, None, self.hidden_size])
        build_sublayer(self.layer_norm, [None, None, self.hidden_size])
        super().build(input_shape)

    def call(self, hidden, bias=None, training=None, seed=None):
        """seed: an int [2] tensor keying the dropout masks (ops.seeded_dropout); None: Keras dropout."""
        if training and seed is not None:
            attended = self.attention(hidden, bias=bias, training=training,
                                      seed=ops.split_seed(seed, 0))
            return self.layer_norm(hidden + ops.seeded_dropout(attended, self.hidden_dropout, seed, 1))
        attended = self.attention(hidden, bias=bias, training=training)
        return self.layer_norm(hidden + self.dropout(attended, training=training))

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_heads=self.num_heads,
                      hidden_dropout=self.hidden_dropout, attention_dropout=self.attention_dropout,
                      initializer_range=self.initializer_range, layer_norm_eps=self.layer_norm_eps)
        return config


class FeedForwardSublayer(keras.layers.Layer):
    """LayerNorm(x + Dropout(Dense_H(act(Dense_I(x))))).

    Args:
      hidden_size, intermediate_size: widths of the two dense layers' outputs.
      activation: a `hidden_act` name (gelu, gelu_new, relu, tanh, silu).
      hidden_dropout, initializer_range, layer_norm_eps: as elsewhere.
    """

    def __init__(self, hidden_size, intermediate_size, activation="gelu", hidden_dropout=0.0,
                 initializer_range=0.02, layer_norm_eps=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = int(hidden_size)
        self.intermediate_size = int(intermediate_size)
        self.activation_name = activation
        self.hidden_dropout = float(hidden_dropout)
        self.initializer_range = float(initializer_range)
        self.layer_norm_eps = float(layer_norm_eps)
        self._activation = ops.activation(activation)
        init = functools.partial(keras.initializers.TruncatedNormal, stddev=self.initializer_range)
        self.intermediate = keras.layers.Dense(self.intermediate_size, kernel_initializer=init(),
                                               name="intermediate")
        self.output_dense = keras.layers.Dense(self.hidden_size, kernel_initializer=init(), name="output")
        self.dropout = keras.layers.Dropout(self.hidden_dropout)
        self.layer_norm = LayerNorm(epsilon=self.layer_norm_eps, name="layer_norm")

    def build(self, input_shape):
        build_sublayer(self.intermediate, [None, None, self.hidden_size])
        build_sublayer(self.output_dense, [None, None, self.intermediate_size])
        build_sublayer(self.layer_norm, [None, None, self.hidden_size])
        super().build(input_shape)

    def call(self, hidden, training=None, seed=None):
        """seed: an int [2] tensor keying the dropout mask (ops.seeded_dropout); None: Keras dropout."""
        inner = self._activation(self.intermediate(hidden))
        out = self.output_dense(inner)
        if training and seed is not None:
            return self.layer_norm(hidden + ops.seeded_dropout(out, self.hidden_dropout, seed, 2))
        return self.layer_norm(hidden + self.dropout(out, training=training))

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
                      activation=self.activation_name, hidden_dropout=self.hidden_dropout,
                      initializer_range=self.initializer_range, layer_norm_eps=self.layer_norm_eps)
        return config


class TransformerBlock(keras.layers.Layer):
    """feed_forward(attention(x)); owns no variables, composes the two given sub-layers."""

    def __init__(self, attention, feed_forward, **kwargs):
        super().__init__(**kwargs)
        self.attention = attention
        self.feed_forward = feed_forward

    def call(self, hidden, bias=None, training=None, seed=None):
        """hidden [B, L, H] -> [B, L, H]; seed: an int [2] tensor keying every dropout mask of the block."""
        hidden = self.attention(hidden, bias=bias, training=training, seed=seed)
        return self.feed_forward(hidden, training=training, seed=seed)

    def get_config(self):
        config = super().get_config()
        config.update(attention=keras.layers.serialize(self.attention),
                      feed_forward=keras.layers.serialize(self.feed_forward))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        custom = {"AttentionSublayer": AttentionSublayer, "FeedForwardSublayer": FeedForwardSublayer}
        config["attention"] = keras.layers.deserialize(config["attention"], custom_objects=custom)
        config["feed_forward"] = keras.layers.deserialize(config["feed_forward"], custom_objects=custom)
        return cls(**config)
