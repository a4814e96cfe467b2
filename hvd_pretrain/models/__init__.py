"""BERT, ALBERT and ELECTRA pretrainers built from small Keras layers.

    layers/    one job each: embeddings, self-attention, transformer sub-layers, heads
    networks/  the transformer encoder (factorized embeddings, cross-layer sharing)
    bert.py    Pretrainer: MLM + NSP/SOP on one encoder (BERT, ALBERT)
    electra.py ElectraPretrainer: generator MLM + replaced-token detection

`count_parameters` and the config helpers are TF-free; the Keras parts are
loaded on first use, so `from hvd_pretrain.models import count_parameters`
does not import TensorFlow.
"""

from hvd_pretrain.models.config import PRESETS, ConfigError, ModelConfig, preset
from hvd_pretrain.models.params import count_parameters, parameter_breakdown

_LAZY = {
    "build_pretrainer": "hvd_pretrain.models.build",
    "Pretrainer": "hvd_pretrain.models.bert",
    "ElectraPretrainer": "hvd_pretrain.models.electra",
    "TransformerEncoder": "hvd_pretrain.models.networks.encoder",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


__all__ = ["PRESETS", "ConfigError", "ModelConfig", "preset", "count_parameters", "parameter_breakdown",
           *_LAZY]
