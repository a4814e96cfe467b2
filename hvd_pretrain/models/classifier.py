"""SequenceClassifier: a pre-trained encoder with a classification head, for fine-tuning.

The heads are those of transformers' *ForSequenceClassification, so a fine-tuned
classifier exports to them and gives the same logits (tests/test_finetune_model.py):

    BERT, ALBERT  logits = Dense_C(dropout(pooled_output))                  (pooler: tanh(Dense_H(h_[CLS])))
    ELECTRA       logits = Dense_C(dropout(gelu(Dense_H(dropout(h_[CLS])))))  (no pooler; ElectraClassificationHead)

Devlin et al. 2019, section 4.1 (GLUE: "the final hidden vector of [CLS]" through the pooler),
Clark et al. 2020 (ELECTRA fine-tuning head).
"""

from hvd_pretrain.models import ops
from hvd_pretrain.tfcompat import keras, tf


def pretrainer_encoder(pretrainer):
    """The encoder a pretrainer fine-tunes: BERT/ALBERT's encoder, ELECTRA's discriminator."""
    return pretrainer.discriminator if pretrainer.config.family == "electra" else pretrainer.encoder


class SequenceClassifier(keras.Model):
    """Sentence (pair) classification on a TransformerEncoder.

    Args:
      encoder: a built TransformerEncoder (shared, not copied: its weights are fine-tuned).
      num_labels: C, the number of classes.
      dropout: dropout before the output layer (transformers: hidden_dropout_prob).
      initializer_range: stddev of the new layers' truncated-normal initializer.

    call(features) takes input_ids, input_mask, segment_ids ([B, L] ints) and returns float32
    logits [B, C].
    """

    def __init__(self, encoder, num_labels, dropout=0.1, initializer_range=0.02, **kwargs):
        kwargs.setdefault("name", "classifier")
        super().__init__(**kwargs)
        self.encoder = encoder
        self.num_labels = int(num_labels)
        if self.num_labels < 2:
            raise ValueError("a classifier needs at least 2 labels, got %d" % self.num_labels)
        init = lambda: keras.initializers.TruncatedNormal(stddev=initializer_range)  # noqa: E731
        self.dropout = keras.layers.Dropout(dropout)
        self.dense = None
        if encoder.pooler is None:  # ELECTRA: a hidden layer on [CLS] instead of the pooler
            self.dense = keras.layers.Dense(encoder.config.hidden_size, kernel_initializer=init(), name="dense")
            self._activation = ops.activation("gelu")
        self.output_layer = keras.layers.Dense(self.num_labels, kernel_initializer=init(), name="output")

    def call(self, features, training=None):
        outputs = self.encoder(features, training=training)
        if self.dense is None:
            hidden = outputs["pooled_output"]
        else:
            hidden = self.dropout(outputs["sequence_output"][:, 0, :], training=training)
            hidden = self._activation(self.dense(hidden))
        hidden = self.dropout(hidden, training=training)
        return tf.cast(self.output_layer(hidden), tf.float32)

    def head_variables(self):
        """The variables fine-tuning creates (not loaded from the checkpoint)."""
        layers = [self.output_layer] + ([self.dense] if self.dense is not None else [])
        return [v for layer in layers for v in layer.trainable_variables]
