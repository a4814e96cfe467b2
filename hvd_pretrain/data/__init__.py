"""Pre-training data: documents -> instances (NSP/SOP/none) -> masking -> TFRecord shards + manifest,
and the tf.data input pipeline that reads them back, one disjoint shard subset per rank.

Everything here except the input pipeline is free of TensorFlow, so the data tools
start fast and their worker processes stay small. `make_dataset` and the feature
specs import TensorFlow on first use.
"""

from hvd_pretrain.data.config import DataConfig
from hvd_pretrain.data.create import create_pretraining_data
from hvd_pretrain.data.documents import ReadStats, expand_input_files, read_documents
from hvd_pretrain.errors import DataError
from hvd_pretrain.data.features import feature_lengths
from hvd_pretrain.data.shards import list_shards, read_manifest, shards_for_rank, verify_shards

_LAZY = {  # name -> module; these import TensorFlow
    "make_dataset": "hvd_pretrain.data.pipeline",
    "static_feature_spec": "hvd_pretrain.data.pipeline",
    "dynamic_feature_spec": "hvd_pretrain.data.pipeline",
    "checked_iterator": "hvd_pretrain.data.pipeline",
    "explain_read_error": "hvd_pretrain.data.pipeline",
}

__all__ = ["DataConfig", "DataError", "ReadStats", "create_pretraining_data", "expand_input_files",
           "feature_lengths", "list_shards", "read_documents", "read_manifest", "shards_for_rank",
           "verify_shards"] + sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
