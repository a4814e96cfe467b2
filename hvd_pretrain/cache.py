"""The user's cache directory: $HVD_PRETRAIN_CACHE, by default ~/.cache/hvd-pretrain.

It holds what is built once per machine and reused by every run: the default corpus (corpus.py), the
measured matmul peak (train/peak.py) and our compiled kernels (kernels/). Pure Python.
"""

import os


def cache_root(cache_dir=None):
    """$HVD_PRETRAIN_CACHE (default ~/.cache/hvd-pretrain), or `cache_dir` when given."""
    if cache_dir:
        return cache_dir
    return os.environ.get("HVD_PRETRAIN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hvd-pretrain")
