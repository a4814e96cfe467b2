"""ElectraPretrainer: a small generator MLM and a replaced-token-detection discriminator.

Data flow (features come from the data tool with the selected positions
already masked, i.e. input_ids is x_masked):
  1. the generator predicts the original tokens at masked_lm_positions (MLM loss);
  2. one token per position is sampled from the generator (Gumbel-max,
     temperature 1, under stop-gradient) and written into the original
     sequence: x_corrupt;
  3. the discriminator labels every real token of x_corrupt as replaced (1)
     or original (0). A sample that equals the original token is original.
Total loss = mlm + disc_weight * rtd (the trainer applies loss_weights).

The generator and discriminator share one Embeddings layer (token, position
and type tables and their LayerNorm); each network projects it to its own
width when the widths differ. `model.discriminator` (also `model.encoder`)
is the network to keep after pre-training.
"""

from hvd_pretrain.models import family, ops
from hvd_pretrain.models.bert import PretrainerBase
from hvd_pretrain.models.layers.building import build_sublayer
from hvd_pretrain.models.layers.heads import MaskedLMHead, ReplacedTokenHead
from hvd_pretrain.models.networks.encoder import TransformerEncoder
from hvd_pretrain.tfcompat import tf


def original_ids(features):
    """x with the masked positions restored to their original tokens."""
    return ops.scatter_positions(features["input_ids"], features["masked_lm_positions"],
                                 features["masked_lm_ids"], features["masked_lm_weights"])


def corrupt_ids(features, sampled):
    """x_corrupt: the original sequence with generator samples at the masked positions."""
    return ops.scatter_positions(features["input_ids"], features["masked_lm_positions"], sampled,
                                 features["masked_lm_weights"])


def replaced_labels(original, corrupted, input_mask):
    """1 where a real token differs from the original, else 0 (float32)."""
    differs = tf.cast(tf.not_equal(original, corrupted), tf.float32)
    return differs * tf.cast(input_mask, tf.float32)


class ElectraPretrainer(PretrainerBase):
    """ELECTRA: generator (masked LM) + discriminator (replaced-token detection)."""

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.generator_config = family.generator_config(c)
        g = self.generator_config
        self.discriminator = TransformerEncoder(c, with_pooler=False, name="discriminator")
        self.generator = TransformerEncoder(g, embeddings=self.discriminator.embeddings, with_pooler=False,
                                            name="generator")
        self.generator_head = MaskedLMHead(g.vocab_size, g.embedding_width, g.hidden_act, g.initializer_range,
                                           g.layer_norm_eps, name="generator_head")
        self.rtd_head = ReplacedTokenHead(c.hidden_size, c.hidden_act, c.initializer_range, name="rtd_head")

    @property
    def encoder(self):
        """The network users keep: the discriminator."""
        return self.discriminator

    def call(self, features, training=None, seed=None):
        """features -> dict: mlm_logits [B, P, V], sampled_ids [B, P], corrupted_ids, rtd_labels,
        rtd_logits [B, L], sequence_output (discriminator).

        seed: int32 [2] (training): split into the generator's dropout seed (0), the samples' (1) and the
        discriminator's dropout seed (2); drawn from TensorFlow's global random stream when None.
        """
        embeddings = self.discriminator.embeddings
        if not embeddings.built:  # name the shared tables after their owner, the discriminator
            with tf.name_scope(self.discriminator.name):
                build_sublayer(embeddings, None)
        seeds = [None] * 3
        if training:
            seed = ops.fresh_seed() if seed is None else seed
            seeds = [ops.split_seed(seed, salt) for salt in range(3)]
        generated = self.generator(features, training=training, seed=seeds[0])
        mlm_logits = self.generator_head(generated["sequence_output"],
                                         self.discriminator.embeddings.word_embeddings,
                                         positions=features["masked_lm_positions"])
        sampled = ops.gumbel_argmax(mlm_logits, seed=seeds[1], example_seeds=features.get("sampling_seeds"))
        corrupted = corrupt_ids(features, sampled)
        labels = replaced_labels(original_ids(features), corrupted, features["input_mask"])
        disc_inputs = dict(features, input_ids=corrupted)
        discriminated = self.discriminator(disc_inputs, training=training, seed=seeds[2])
        return {
            "mlm_logits": mlm_logits, "sampled_ids": sampled, "corrupted_ids": corrupted,
            "rtd_labels": labels, "rtd_logits": self.rtd_head(discriminated["sequence_output"]),
            "sequence_output": discriminated["sequence_output"],
        }

    def loss_sums(self, features, training=False, seed=None):
        outputs = self(features, training=training, seed=seed)
        weights = tf.cast(features["masked_lm_weights"], tf.float32)
        mask = tf.cast(features["input_mask"], tf.float32)
        labels, logits = outputs["rtd_labels"], outputs["rtd_logits"]
        rtd = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        predicted = tf.cast(logits > 0, tf.float32)
        hit = tf.cast(tf.equal(predicted, labels), tf.float32) * mask
        mlm, mlm_correct = ops.cross_entropy_and_hits(outputs["mlm_logits"], features["masked_lm_ids"], weights)
        return {
            "mlm": mlm,
            "mlm_correct": mlm_correct,
            "rtd": tf.reduce_sum(rtd * mask),
            "rtd_correct": tf.reduce_sum(hit),
            "rtd_replaced": tf.reduce_sum(labels),
            "rtd_replaced_correct": tf.reduce_sum(hit * labels),
            "rtd_predicted": tf.reduce_sum(predicted * mask),
        }
