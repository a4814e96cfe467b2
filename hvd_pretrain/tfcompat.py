"""The one place TensorFlow and Keras are imported from.

`keras` is tf-keras (the Keras 2 API): its variables are tf.Variables, which is
what Horovod's broadcast and allreduce helpers operate on. Keras 3 is not used.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
