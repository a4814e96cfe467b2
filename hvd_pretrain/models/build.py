"""build_pretrainer: the one entry point from a ModelConfig to a Keras pretrainer."""

from hvd_pretrain.models import family


def build_pretrainer(config):
    """A Pretrainer (BERT, ALBERT) or ElectraPretrainer for `config`.

    Raises ConfigError, naming the key, for a config that cannot be built.
    Variables are created on the first call (or by `model.build_for()`).
    """
    family.check_model_config(config)
    if config.family == "electra":
        from hvd_pretrain.models.electra import ElectraPretrainer
        return ElectraPretrainer(config)
    from hvd_pretrain.models.bert import Pretrainer
    return Pretrainer(config)
