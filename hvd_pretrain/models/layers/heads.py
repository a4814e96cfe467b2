"""Pre-training heads: masked LM, sentence-pair classification, replaced-token detection.

Every head returns float32 logits, whatever the compute dtype, so that the
losses are computed in float32 under a mixed-precision policy.
"""

import functools

from hvd_pretrain.models import ops
from hvd_pretrain.models.layers.building import build_sublayer
from hvd_pretrain.models.layers.normalization import LayerNorm
from hvd_pretrain.tfcompat import keras, tf


class MaskedLMHead(keras.layers.Layer):
    """Masked-LM logits with the output layer tied to the word embeddings.

    transform = LayerNorm(act(Dense_E(h))); logits = transform @ table^T + bias.
    The tied table [V, E] is passed at call time, so this layer owns only the
    transform and the output bias.

    Args:
      vocab_size: V, the size of the output bias.
      embedding_width: E, the width of the tied table (ALBERT: 128, BERT: hidden).
      activation: a `hidden_act` name.
      initializer_range, layer_norm_eps: as elsewhere.
    """

    def __init__(self, vocab_size, embedding_width, activation="gelu", initializer_range=0.02,
                 layer_norm_eps=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.embedding_width = int(embedding_width)
        self.activation_name = activation
        self.initializer_range = float(initializer_range)
        self.layer_norm_eps = float(layer_norm_eps)
        self._activation = ops.activation(activation)
        self.transform = keras.layers.Dense(
            self.embedding_width, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=self.initializer_range), name="transform")
        self.layer_norm = LayerNorm(epsilon=self.layer_norm_eps, name="layer_norm")

    def build(self, input_shape):
        build_sublayer(self.transform, input_shape)
        build_sublayer(self.layer_norm, [None, None, self.embedding_width])
        self.output_bias = self.add_weight("output_bias", shape=[self.vocab_size], initializer="zeros")
        super().build(input_shape)

    def call(self, sequence_output, embedding_table, positions=None):
        """sequence_output [B, L, H]; positions [B, P] or None (all positions) -> [B, P or L, V]."""
        if positions is not None:
            sequence_output = ops.gather_positions(sequence_output, positions)
        hidden = self.layer_norm(self._activation(self.transform(sequence_output)))
        table = tf.cast(embedding_table, hidden.dtype)
        logits = tf.einsum("bpe,ve->bpv", hidden, table)
        return tf.cast(logits, tf.float32) + tf.cast(self.output_bias, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, embedding_width=self.embedding_width,
                      activation=self.activation_name, initializer_range=self.initializer_range,
                      layer_norm_eps=self.layer_norm_eps)
        return config


class SentenceHead(keras.layers.Layer):
    """Classifier on the pooled [CLS] vector: NSP or SOP (2 classes).

    Args:
      num_classes: number of output classes.
      initializer_range: stddev of the kernel initializer.
    """

    def __init__(self, num_classes=2, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.initializer_range = float(initializer_range)
        self.classifier = keras.layers.Dense(
            self.num_classes, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=self.initializer_range), name="classifier")

    def build(self, input_shape):
        build_sublayer(self.classifier, input_shape)
        super().build(input_shape)

    def call(self, pooled_output):
        return tf.cast(self.classifier(pooled_output), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, initializer_range=self.initializer_range)
        return config


class ReplacedTokenHead(keras.layers.Layer):
    """Per-token logit that the token was replaced: Dense_1(act(Dense_H(h))).

    Args:
      hidden_size: width of the hidden dense layer.
      activation: a `hidden_act` name.
      initializer_range: stddev of the kernel initializer.
    """

    def __init__(self, hidden_size, activation="gelu", initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = int(hidden_size)
        self.activation_name = activation
        self.initializer_range = float(initializer_range)
        self._activation = ops.activation(activation)
        init = functools.partial(keras.initializers.TruncatedNormal, stddev=self.initializer_range)
        self.dense = keras.layers.Dense(self.hidden_size, kernel_initializer=init(), name="dense")
        self.prediction = keras.layers.Dense(1, kernel_initializer=init(), name="prediction")

    def build(self, input_shape):
        build_sublayer(self.dense, input_shape)
        build_sublayer(self.prediction, [None, None, self.hidden_size])
        super().build(input_shape)

    def call(self, sequence_output):
        logits = self.prediction(self._activation(self.dense(sequence_output)))
        return tf.cast(tf.squeeze(logits, axis=-1), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, activation=self.activation_name,
                      initializer_range=self.initializer_range)
        return config
