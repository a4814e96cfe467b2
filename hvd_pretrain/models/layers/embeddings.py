"""Token + position + token-type embeddings, LayerNorm and dropout."""

from hvd_pretrain.models import ops
from hvd_pretrain.models.layers.building import build_sublayer
from hvd_pretrain.models.layers.normalization import LayerNorm
from hvd_pretrain.tfcompat import keras, tf


class Embeddings(keras.layers.Layer):
    """Sums word, position and token-type embeddings of width `width`.

    The output keeps the embedding width; an encoder whose hidden size
    differs (ALBERT, ELECTRA-small) projects it. The word table is exposed
    as `word_embeddings` for the tied masked-LM output layer, and the whole
    layer can be shared by two encoders (ELECTRA generator/discriminator).

    Args:
      vocab_size, width, max_position_embeddings, type_vocab_size: table shapes.
      initializer_range: stddev of the truncated normal initializer.
      layer_norm_eps: LayerNorm epsilon.
      dropout: dropout rate after the LayerNorm.
    """

    def __init__(self, vocab_size, width, max_position_embeddings=512, type_vocab_size=2,
                 initializer_range=0.02, layer_norm_eps=1e-12, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.width = int(width)
        self.max_position_embeddings = int(max_position_embeddings)
        self.type_vocab_size = int(type_vocab_size)
        self.initializer_range = float(initializer_range)
        self.layer_norm_eps = float(layer_norm_eps)
        self.dropout_rate = float(dropout)
        self.layer_norm = LayerNorm(epsilon=self.layer_norm_eps, name="layer_norm")
        self.dropout = keras.layers.Dropout(self.dropout_rate)

    def _initializer(self):
        return keras.initializers.TruncatedNormal(stddev=self.initializer_range)

    def build(self, input_shape):
        self.word_embeddings = self.add_weight(
            "word_embeddings", shape=[self.vocab_size, self.width], initializer=self._initializer())
        self.position_embeddings = self.add_weight(
            "position_embeddings", shape=[self.max_position_embeddings, self.width],
            initializer=self._initializer())
        self.type_embeddings = self.add_weight(
            "type_embeddings", shape=[self.type_vocab_size, self.width], initializer=self._initializer())
        build_sublayer(self.layer_norm, [None, None, self.width])
        super().build(input_shape)

    def call(self, input_ids, segment_ids=None, training=None, seed=None):
        """input_ids, segment_ids [B, L] ints -> [B, L, width]. seed: an int [2] tensor keying the
        dropout mask (ops.seeded_dropout); None: Keras dropout."""
        dtype = self.compute_dtype
        input_ids = tf.cast(input_ids, tf.int32)
        length = tf.shape(input_ids)[1]
        tf.debugging.assert_less_equal(
            length, self.max_position_embeddings,
            message="sequence length exceeds model.max_position_embeddings=%d; lower max_seq_length"
                    % self.max_position_embeddings)
        words = tf.cast(ops.embedding_lookup(self.word_embeddings, input_ids), dtype)
        positions = tf.cast(self.position_embeddings[:length], dtype)[None, :, :]
        if segment_ids is None:
            segment_ids = tf.zeros_like(input_ids)
        types = tf.cast(ops.embedding_lookup(self.type_embeddings, segment_ids), dtype)
        out = self.layer_norm(words + positions + types)
        if training and seed is not None:
            return ops.seeded_dropout(out, self.dropout_rate, seed, 0)
        return self.dropout(out, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, width=self.width,
                      max_position_embeddings=self.max_position_embeddings,
                      type_vocab_size=self.type_vocab_size, initializer_range=self.initializer_range,
                      layer_norm_eps=self.layer_norm_eps, dropout=self.dropout_rate)
        return config
