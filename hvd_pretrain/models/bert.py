"""Pretrainer: masked LM plus an optional sentence objective (NSP or SOP) on one encoder.

Used for BERT (nsp, no sharing) and ALBERT (sop, factorized embeddings,
cross-layer sharing). The trainer calls:

    model.objectives             ("mlm", "nsp") / ("mlm", "sop") / ("mlm",)
    model.loss_weights           {"mlm": 1.0, "nsp": 1.0}
    model.target_counts(feats)   name -> float32 number of targets (from the features only)
    model.loss_sums(feats, training, seed)  name -> float32 SUM of per-target losses (+ "<name>_correct")

`seed` (training only) is the int32 [2] stateless seed of the forward pass's dropout masks (and ELECTRA's
generator samples): the trainer passes ops.step_seed(run seed, step, micro-batch, rank), so a resumed run
draws what the uninterrupted run drew. Without one, a seed is drawn from TensorFlow's global random stream.

Losses are sums, not means, so that the trainer can normalise by global
target counts across micro-batches and ranks.
"""

from hvd_pretrain.models import family, ops
from hvd_pretrain.models.config import ModelConfig
from hvd_pretrain.models.features import dummy_features
from hvd_pretrain.models.layers.heads import MaskedLMHead, SentenceHead
from hvd_pretrain.models.networks.encoder import TransformerEncoder
from hvd_pretrain.tfcompat import keras, tf

class PretrainerBase(keras.Model):
    """What every pretrainer shares: objectives, weights, target counts, building."""

    def __init__(self, config, **kwargs):
        kwargs.setdefault("name", "pretrainer")
        super().__init__(**kwargs)
        self.config = family.check_model_config(config)
        self.objectives = family.objectives(config)
        self.loss_weights = family.loss_weights(config)

    def target_counts(self, features):
        """Objective name -> float32 scalar count of its targets, from the features only."""
        counts = {}
        for name in self.objectives:
            if name == "mlm":
                counts[name] = tf.reduce_sum(tf.cast(features["masked_lm_weights"], tf.float32))
            elif name in ("nsp", "sop"):
                counts[name] = tf.cast(tf.shape(features["input_ids"])[0], tf.float32)
            elif name == "rtd":
                counts[name] = tf.reduce_sum(tf.cast(features["input_mask"], tf.float32))
        return counts

    def build_for(self, batch=2, seq_length=16, predictions=4):
        """Create every variable by running one forward pass on dummy features."""
        seq_length = min(seq_length, self.config.max_position_embeddings)
        self.loss_sums(dummy_features(batch, seq_length, min(predictions, seq_length)), training=False)
        return self

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(ModelConfig.from_dict(config["config"]), name=config.get("name"))


class Pretrainer(PretrainerBase):
    """BERT / ALBERT pre-training model: encoder + tied MLM head + NSP/SOP head."""

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.encoder = TransformerEncoder(c, name="encoder")
        self.mlm_head = MaskedLMHead(c.vocab_size, c.embedding_width, c.hidden_act, c.initializer_range,
                                     c.layer_norm_eps, name="mlm_head")
        self.sentence_head = None
        if c.sentence_objective != "none":
            self.sentence_head = SentenceHead(2, c.initializer_range, name="%s_head" % c.sentence_objective)

    def call(self, features, training=None, seed=None):
        """features -> dict: sequence_output, pooled_output, mlm_logits [B, P, V], <nsp|sop>_logits [B, 2]."""
        outputs = dict(self.encoder(features, training=training, seed=seed))
        outputs["mlm_logits"] = self.mlm_head(outputs["sequence_output"], self.encoder.embeddings.word_embeddings,
                                              positions=features["masked_lm_positions"])
        if self.sentence_head is not None:
            outputs["%s_logits" % self.config.sentence_objective] = self.sentence_head(outputs["pooled_output"])
        return outputs

    def loss_sums(self, features, training=False, seed=None):
        outputs = self(features, training=training, seed=seed)
        weights = tf.cast(features["masked_lm_weights"], tf.float32)
        sums = dict(zip(("mlm", "mlm_correct"),
                        ops.cross_entropy_and_hits(outputs["mlm_logits"], features["masked_lm_ids"], weights)))
        if self.sentence_head is not None:
            name = self.config.sentence_objective
            labels = ops.sentence_labels(features["next_sentence_labels"])
            sums[name], sums["%s_correct" % name] = ops.cross_entropy_and_hits(outputs["%s_logits" % name], labels)
        return sums
