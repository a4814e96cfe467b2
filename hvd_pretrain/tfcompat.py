"""The one place TensorFlow and Keras are imported from.

`keras` is tf-keras (the Keras 2 API): its variables are tf.Variables, which is
what Horovod's broadcast and allreduce helpers operate on. Keras 3 is not used.

XLA on a CPU: TensorFlow 2.18's XLA runs CPU code through its "thunk" runtime by
default, where matmuls are XLA's own loops. With the classic runtime
(`--xla_cpu_use_thunk_runtime=false`) XLA rewrites them into oneDNN calls
(`__onednn$matmul` custom calls), the library TensorFlow's own CPU ops use. That
flag is added to XLA_FLAGS before TensorFlow starts, unless XLA_FLAGS already
sets it: BENCHMARKS.md, "XLA on a CPU with oneDNN matmuls", has the step times.
It has no effect on GPU compilation.
"""

import os

CPU_XLA_FLAGS = ("--xla_cpu_use_thunk_runtime=false",)


def xla_flags(current):
    """XLA_FLAGS `current` (a string, possibly empty) with CPU_XLA_FLAGS appended, except a flag
    whose name `current` already sets (the user's choice wins)."""
    current = (current or "").strip()
    given = {word.split("=", 1)[0] for word in current.split()}
    added = [flag for flag in CPU_XLA_FLAGS if flag.split("=", 1)[0] not in given]
    return " ".join([current] + added if current else added)


os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["XLA_FLAGS"] = xla_flags(os.environ.get("XLA_FLAGS"))

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from tensorflow.python.ops import control_flow_util as _control_flow_util  # noqa: E402

__all__ = ["tf", "keras", "in_xla_context", "xla_flags"]


def in_xla_context():
    """True while tracing inside an XLA cluster (a `tf.function(jit_compile=True)`), where only ops with
    XLA kernels may run (not our own kernels, hvd_pretrain/kernels)."""
    graph = tf.compat.v1.get_default_graph()
    return _control_flow_util.GraphOrParentsInXlaContext(graph)
