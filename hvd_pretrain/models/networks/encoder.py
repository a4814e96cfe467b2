"""The transformer encoder network: embeddings -> (projection) -> L blocks -> (pooler).

One class covers BERT (sharing `none`), ALBERT (factorized embeddings and
sharing `all`, `ffn` or `attention`) and both ELECTRA networks.
"""

import functools

from hvd_pretrain.models import family, ops
from hvd_pretrain.models.config import ModelConfig
from hvd_pretrain.models.layers.embeddings import Embeddings
from hvd_pretrain.models.layers.transformer import AttentionSublayer, FeedForwardSublayer, TransformerBlock
from hvd_pretrain.tfcompat import keras, tf


def make_embeddings(config, name="embeddings"):
    """The Embeddings layer a config asks for (width E = config.embedding_width)."""
    return Embeddings(config.vocab_size, config.embedding_width, config.max_position_embeddings,
                      config.type_vocab_size, config.initializer_range, config.layer_norm_eps,
                      config.hidden_dropout, name=name)


class TransformerEncoder(keras.Model):
    """A BERT/ALBERT/ELECTRA encoder built from a ModelConfig.

    Cross-layer sharing (`config.sharing`):
      none       every layer owns its attention and feed-forward sub-layers (BERT)
      all        one attention and one feed-forward sub-layer reused by every layer (ALBERT)
      attention  one attention sub-layer shared, a feed-forward sub-layer per layer
      ffn        one feed-forward sub-layer shared, an attention sub-layer per layer
    Each sub-layer carries its own LayerNorm, which is shared with it.

    Args:
      config: a ModelConfig.
      embeddings: an Embeddings layer to share (ELECTRA's generator reuses the
        discriminator's); a new one is made when None.
      with_pooler: add the tanh [CLS] pooler; defaults to the family's choice.

    call(inputs, training, seed) takes a dict with input_ids, input_mask and
    segment_ids ([B, L] ints) and returns a dict with sequence_output
    [B, L, H] and, with a pooler, pooled_output [B, H].

    Dropout (training only) is stateless: every mask is keyed by `seed`, an
    int32 [2] tensor (the trainer's ops.step_seed: run seed, optimizer step,
    micro-batch, rank), split per site with ops.split_seed: -1 for the
    embeddings, the layer index for each block. Without a seed one is drawn
    from TensorFlow's global random stream (ops.fresh_seed).

    Activation recompute (`recompute`, the trainer's --recompute): "block"
    keeps only each transformer block's input for backward and computes the
    block again there (tf.recompute_grad), trading one more forward pass of
    the blocks for their activations. The blocks' dropout masks are keyed by
    the forward pass's seed (ops.seeded_dropout), so the
    recomputed block drops the same units and the gradients are those without
    recompute; both settings train identically.
    """

    RECOMPUTE = ("none", "block")
    EMBEDDINGS_SITE = -1  # the embeddings' dropout seed: split_seed(seed, -1); block i's: split_seed(seed, i)

    def __init__(self, config, embeddings=None, with_pooler=None, **kwargs):
        kwargs.setdefault("name", "encoder")
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        self.config = config
        self.recompute = "none"
        self.with_pooler = family.has_pooler(config) if with_pooler is None else bool(with_pooler)
        init = functools.partial(keras.initializers.TruncatedNormal, stddev=config.initializer_range)
        self.embeddings = embeddings if embeddings is not None else make_embeddings(config)
        self.embedding_projection = None
        if config.embedding_width != config.hidden_size:
            self.embedding_projection = keras.layers.Dense(config.hidden_size, kernel_initializer=init(),
                                                           name="embedding_projection")
        self.attention_sublayers = [self._attention(i) for i in range(self._copies(("all", "attention")))]
        self.ffn_sublayers = [self._feed_forward(i) for i in range(self._copies(("all", "ffn")))]
        self.blocks = [
            TransformerBlock(self.attention_sublayers[min(i, len(self.attention_sublayers) - 1)],
                             self.ffn_sublayers[min(i, len(self.ffn_sublayers) - 1)], name="block_%d" % i)
            for i in range(config.num_layers)]
        self.pooler = None
        if self.with_pooler:
            self.pooler = keras.layers.Dense(config.hidden_size, activation="tanh", kernel_initializer=init(),
                                             name="pooler")

    def _copies(self, shared_modes):
        return 1 if self.config.sharing in shared_modes else self.config.num_layers

    def _attention(self, index):
        c = self.config
        return AttentionSublayer(c.hidden_size, c.num_heads, c.hidden_dropout, c.attention_dropout,
                                 c.initializer_range, c.layer_norm_eps, name="attention_%d" % index)

    def _feed_forward(self, index):
        c = self.config
        return FeedForwardSublayer(c.hidden_size, c.intermediate_size, c.hidden_act, c.hidden_dropout,
                                   c.initializer_range, c.layer_norm_eps, name="ffn_%d" % index)

    def call(self, inputs, training=None, seed=None):
        input_ids = inputs["input_ids"]
        input_mask = inputs.get("input_mask")
        if input_mask is None:
            input_mask = tf.ones_like(input_ids)
        seed = (ops.fresh_seed() if seed is None else seed) if training else None
        hidden = self.embeddings(input_ids, inputs.get("segment_ids"), training=training,
                                 seed=None if seed is None else ops.split_seed(seed, self.EMBEDDINGS_SITE))
        if self.embedding_projection is not None:
            hidden = self.embedding_projection(hidden)
        bias = ops.attention_bias(input_mask, hidden.dtype)
        # Recompute once the blocks exist: variables are created by a plain first call.
        recompute = (bool(training) and self.recompute == "block"
                     and all(b.attention.built and b.feed_forward.built for b in self.blocks))
        for index, block in enumerate(self.blocks):
            block_seed = None if seed is None else ops.split_seed(seed, index)
            if recompute:
                hidden = tf.recompute_grad(functools.partial(self._run_block, block, bias, block_seed))(hidden)
            else:
                hidden = block(hidden, bias=bias, training=training, seed=block_seed)
        outputs = {"sequence_output": hidden}
        if self.pooler is not None:
            outputs["pooled_output"] = self.pooler(hidden[:, 0, :])
        return outputs

    @staticmethod
    def _run_block(block, bias, seed, hidden):
        return block(hidden, bias=bias, training=True, seed=seed)

    def get_config(self):
        return {"config": self.config.to_dict(), "with_pooler": self.with_pooler, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
