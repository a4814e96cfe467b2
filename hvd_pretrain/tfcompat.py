"""The one place TensorFlow and Keras are imported from.

`keras` is tf-keras (the Keras 2 API): its variables are tf.Variables, which is
what Horovod's broadcast and allreduce helpers operate on. Keras 3 is not used.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from tensorflow.python.ops import control_flow_util as _control_flow_util  # noqa: E402

__all__ = ["tf", "keras", "in_xla_context"]


def in_xla_context():
    """True while tracing inside an XLA cluster (a `tf.function(jit_compile=True)`), where only ops with
    XLA kernels may run (not our own kernels, hvd_pretrain/kernels)."""
    graph = tf.compat.v1.get_default_graph()
    return _control_flow_util.GraphOrParentsInXlaContext(graph)
