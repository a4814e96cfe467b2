"""XLA on a CPU compiles matmuls into oneDNN calls, unless the user's XLA_FLAGS says otherwise."""

import glob
import os
import sys

import proc

from hvd_pretrain import tfcompat

# TensorFlow is imported before hvd_pretrain on purpose: XLA reads XLA_FLAGS at its first compilation.
COMPILE_A_MATMUL = """
import sys
import tensorflow as tf
from hvd_pretrain import tfcompat  # noqa: F401
x, w = tf.ones([256, 512]), tf.ones([512, 1024])  # oneDNN takes matmuls above a size
y = tf.function(lambda x, w: tf.nn.relu(tf.matmul(x, w)), jit_compile=True)(x, w)
assert float(y[0, 0]) == 512.0
"""


def optimized_hlo(tmp_path, xla_flags):
    dump = tmp_path / "dump"
    env = proc.test_env()
    env["XLA_FLAGS"] = ("%s --xla_dump_to=%s" % (xla_flags, dump)).strip()
    proc.run([sys.executable, "-c", COMPILE_A_MATMUL], timeout=120, env=env)
    texts = [open(p).read() for p in glob.glob(os.path.join(str(dump), "*after_optimizations.txt"))]
    assert texts, "XLA wrote no optimized HLO under %s" % dump
    return "\n".join(texts)


def test_a_compiled_matmul_becomes_a_onednn_call(tmp_path):
    assert "__onednn$matmul" in optimized_hlo(tmp_path, "")


def test_the_users_xla_flags_win(tmp_path):
    assert "__onednn$matmul" not in optimized_hlo(tmp_path, "--xla_cpu_use_thunk_runtime=true")


def test_xla_flags_are_added_once_and_never_override():
    flag = "--xla_cpu_use_thunk_runtime=false"
    assert tfcompat.xla_flags(None) == flag
    assert tfcompat.xla_flags("  ") == flag
    assert tfcompat.xla_flags("--xla_dump_to=/d") == "--xla_dump_to=/d " + flag
    assert tfcompat.xla_flags(flag) == flag
    assert tfcompat.xla_flags("--xla_cpu_use_thunk_runtime=true") == "--xla_cpu_use_thunk_runtime=true"
    assert tfcompat.xla_flags("--xla_cpu_use_thunk_runtime") == "--xla_cpu_use_thunk_runtime"
    assert os.environ["XLA_FLAGS"].split().count(flag) <= 1
