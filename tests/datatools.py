"""Reading created TFRecord shards back in tests (no TensorFlow)."""

import hashlib
import os

from hvd_pretrain.data import list_shards
from hvd_pretrain.data.tfrecord import decode_example, iter_records


def records(data_dir):
    """Every record of every shard of `data_dir`, decoded to {feature: list}."""
    return [decode_example(r) for f in list_shards(data_dir) for r in iter_records(f)]


def digest(data_dir):
    """{shard file name: SHA-256 of its bytes}."""
    out = {}
    for path in list_shards(data_dir):
        with open(path, "rb") as f:
            out[os.path.basename(path)] = hashlib.sha256(f.read()).hexdigest()
    return out
