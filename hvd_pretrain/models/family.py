"""Facts derived from a ModelConfig that both the Keras models and the
TF-free parameter arithmetic need: which objectives a family trains, whether
the encoder has a pooler, and the shape of an ELECTRA generator.

Pure Python: no TensorFlow import.
"""

import dataclasses

from hvd_pretrain.models.config import ConfigError

ACTIVATIONS = ("gelu", "gelu_new", "relu", "tanh", "silu")


def check_model_config(config):
    """config.validate() plus the checks that only the model library knows."""
    config.validate()
    if config.hidden_act not in ACTIVATIONS:
        raise ConfigError("model.hidden_act=%r is unknown; choose one of %s"
                          % (config.hidden_act, ", ".join(ACTIVATIONS)))
    if config.family == "electra" and config.sentence_objective != "none":
        raise ConfigError("model.sentence_objective=%r cannot be combined with model.family='electra'; "
                          "set it to 'none' (ELECTRA trains MLM + replaced-token detection)"
                          % config.sentence_objective)
    if config.family == "electra":
        gen = generator_config(config)
        if gen.hidden_size < 1 or gen.intermediate_size < 1:
            raise ConfigError("model.generator_hidden_size=%r makes an empty generator for hidden_size=%d"
                              % (config.generator_hidden_size, config.hidden_size))
    if not config.initializer_range > 0:
        raise ConfigError("model.initializer_range=%r must be positive" % config.initializer_range)
    for key in ("hidden_dropout", "attention_dropout"):
        if not 0.0 <= getattr(config, key) < 1.0:
            raise ConfigError("model.%s=%r must be in [0, 1)" % (key, getattr(config, key)))
    return config


def objectives(config):
    """The objective names a pretrainer built from `config` trains, in order."""
    if config.family == "electra":
        return ("mlm", "rtd")
    if config.sentence_objective == "none":
        return ("mlm",)
    return ("mlm", config.sentence_objective)


def loss_weights(config):
    """Objective name -> weight of its normalised loss in the total."""
    weights = {name: 1.0 for name in objectives(config)}
    if config.family == "electra":
        weights["rtd"] = float(config.disc_weight)
    return weights


def has_pooler(config):
    """BERT and ALBERT encoders carry a tanh pooler over [CLS]; ELECTRA's does not."""
    return config.family != "electra"


def generator_config(config):
    """The ELECTRA generator: same depth, a fraction of the width.

    hidden and intermediate sizes are scaled by `generator_hidden_size`; heads
    are one per 64 hidden units (at least one, and a divisor of the width).
    The generator shares the discriminator's embedding tables, so its
    embedding width is the discriminator's.
    """
    ratio = float(config.generator_hidden_size)
    hidden = int(round(config.hidden_size * ratio))
    intermediate = int(round(config.intermediate_size * ratio))
    heads = max(1, hidden // 64)
    while hidden > 0 and hidden % heads:
        heads -= 1
    return dataclasses.replace(
        config, hidden_size=hidden, intermediate_size=intermediate, num_heads=max(heads, 1),
        embedding_size=config.embedding_width, generator_hidden_size=1.0, sentence_objective="none")
