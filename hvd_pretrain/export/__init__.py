"""Interchange with Hugging Face transformers and Google's TF1 checkpoints.

    export_hf(model, out_dir, vocab_dir=None, overwrite=False)   -> transformers directories
    config_from_pretrained(source)  -> ModelConfig of an HF dir or a Google checkpoint
    load_pretrained(model, source)  -> assign its weights to a built pretrainer
    pretrained_vocab(source), check_vocab(config, path) -> the checkpoint's vocab.txt / spiece.model

TensorFlow is imported by the submodules, not here.
"""

_LAZY = {
    "export_hf": "hvd_pretrain.export.hf",
    "ExportError": "hvd_pretrain.export.hf",
    "config_from_pretrained": "hvd_pretrain.export.importers",
    "load_pretrained": "hvd_pretrain.export.importers",
    "pretrained_vocab": "hvd_pretrain.export.importers",
    "check_vocab": "hvd_pretrain.export.importers",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


__all__ = list(_LAZY)
