"""build_pretrainer: the one entry point from a ModelConfig to a Keras pretrainer."""

from hvd_pretrain.models import family


def build_pretrainer(config, recompute="none"):
    """A Pretrainer (BERT, ALBERT) or ElectraPretrainer for `config`.

    recompute: "none", or "block" to recompute every transformer block in backward instead of
    keeping its activations (TransformerEncoder; the gradients are the same).
    Raises ConfigError, naming the key, for a config that cannot be built.
    Variables are created on the first call (or by `model.build_for()`).
    """
    family.check_model_config(config)
    if config.family == "electra":
        from hvd_pretrain.models.electra import ElectraPretrainer
        model = ElectraPretrainer(config)
    else:
        from hvd_pretrain.models.bert import Pretrainer
        model = Pretrainer(config)
    return set_recompute(model, recompute)


def set_recompute(model, recompute):
    """Set activation recompute ("none" or "block") on every encoder of `model`; returns the model."""
    from hvd_pretrain.models.networks.encoder import TransformerEncoder
    if recompute not in TransformerEncoder.RECOMPUTE:
        raise ValueError("recompute=%r is unknown; choose none or block" % (recompute,))
    for module in [model] + list(model.submodules):
        if isinstance(module, TransformerEncoder):
            module.recompute = recompute
    return model
