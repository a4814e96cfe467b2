"""Our own TensorFlow kernels, compiled on first use and cached.

* `HvdFusedAdamW` (fused_adamw.cc): AdamW's decay, moments and weight update for one variable in one
  pass over its memory, with the gradient multiplied by the clip factor on the way (train/optimizers.py).
  The same update in TensorFlow's stock ops takes three passes over the weights and two over the gradient.
* `HvdSoftmaxXent` and its gradient (softmax_xent.cc): softmax cross-entropy over wide rows, the MLM
  loss's (models/ops.py), without writing exp(logits - max) forward.
* `HvdGelu` and its gradient (gelu.cc): exact GELU in one pass each way (models/ops.py); TensorFlow's
  ops for it make five passes forward and seven backward.

Building: the C++ source is compiled with TensorFlow's own flags (tf.sysconfig) by `$CXX` (default
`c++`), about 10 s, into $HVD_PRETRAIN_CACHE/kernels/ (default ~/.cache/hvd-pretrain/kernels/), named
by a hash of the source, the TensorFlow version and the flags. The ranks of a job share the file: the
first builds it under a file lock, the others wait and load it; a library is written under a temporary
name and renamed, so a reader never sees half of one. `make install` builds it ahead
(`python -m hvd_pretrain.kernels`).

When a kernel cannot be built or loaded (no compiler, a TensorFlow without headers), `fused_adamw()`,
`softmax_xent()` and `gelu()` return None and log why, once; the callers then run TensorFlow's stock ops (the
optimizer's update equal to the bit, the cross-entropy and GELU to float rounding), slower. They do the same on a
GPU and inside XLA clusters, as the kernels are CPU kernels. HVD_PRETRAIN_FUSED_KERNELS=0 turns our kernels off.
"""

import fcntl
import hashlib
import logging
import os
import shlex
import subprocess
import sys
import tempfile

from hvd_pretrain.cache import cache_root

log = logging.getLogger(__name__)

ENV_SWITCH = "HVD_PRETRAIN_FUSED_KERNELS"
BUILD_TIMEOUT_S = 600
_HERE = os.path.dirname(os.path.abspath(__file__))
_loaded = {}


class KernelBuildError(RuntimeError):
    """A kernel could not be compiled or loaded; the message says why in one line."""


def enabled():
    """False when HVD_PRETRAIN_FUSED_KERNELS is 0, false, no or off."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _compiler():
    return shlex.split(os.environ.get("CXX") or "c++")


def simd_flags(cpuinfo="/proc/cpuinfo"):
    """["-mavx2", "-mfma"] when this CPU has both (Eigen's vectorised exp and arithmetic then use 8 floats
    at a time: the cross-entropy kernel runs 1.5x faster than with the default SSE2), else []. The flags
    are part of the library's cache key, so nodes of different CPUs sharing a home directory each build
    their own."""
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return ["-mavx2", "-mfma"] if {"avx2", "fma"} <= set(flags) else []


def _flags(tf):
    compile_flags = (["-O3", "-shared", "-fPIC", "-ffp-contract=off"] + simd_flags()
                     + list(tf.sysconfig.get_compile_flags()))
    return compile_flags, list(tf.sysconfig.get_link_flags())


def library_path(name, cache_dir=None):
    """Where the compiled `name` (e.g. "fused_adamw") is cached for this TensorFlow, flags and source."""
    from hvd_pretrain.tfcompat import tf

    with open(os.path.join(_HERE, name + ".cc"), "rb") as f:
        source = f.read()
    compile_flags, link_flags = _flags(tf)
    key = hashlib.sha256(b"\0".join([source, tf.__version__.encode(), " ".join(_compiler() + compile_flags
                                                                               + link_flags).encode()]))
    return os.path.join(cache_root(cache_dir), "kernels", "%s-%s.so" % (name, key.hexdigest()[:16]))


def build(name, cache_dir=None):
    """Compile `name`.cc unless its library is cached; returns the library's path.

    Raises KernelBuildError with the compiler's first error line.
    """
    from hvd_pretrain.tfcompat import tf

    path = library_path(name, cache_dir)
    if os.path.isfile(path):
        return path
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        lock = open(os.path.join(directory, ".lock"), "a")
    except OSError as e:
        raise KernelBuildError("cannot write %s: %s" % (directory, e)) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other ranks wait here, then find the library built
        if os.path.isfile(path):
            return path
        compile_flags, link_flags = _flags(tf)
        fd, tmp = tempfile.mkstemp(prefix=".%s-" % name, suffix=".so", dir=directory)
        os.close(fd)
        command = _compiler() + compile_flags + [os.path.join(_HERE, name + ".cc"), "-o", tmp] + link_flags
        try:
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise KernelBuildError("%s: %s" % (command[0], e)) from None
            if done.returncode != 0:
                lines = [ln for ln in done.stderr.splitlines() if "error" in ln] or done.stderr.splitlines() or [""]
                raise KernelBuildError("%s exited with %d: %s" % (command[0], done.returncode, lines[0].strip()))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def load(name, cache_dir=None):
    """The op module of kernel `name` (tf.load_op_library), building it first if needed, or None.

    None when HVD_PRETRAIN_FUSED_KERNELS turns kernels off, or when the build or the load fails; the
    reason is logged once per process.
    """
    if not enabled():
        return None
    key = (name, cache_dir)
    if key not in _loaded:
        from hvd_pretrain.tfcompat import tf

        try:
            _loaded[key] = tf.load_op_library(build(name, cache_dir))
        except (KernelBuildError, tf.errors.NotFoundError, OSError) as e:
            log.warning("kernel %s unavailable (%s); using TensorFlow's stock ops instead (the same results, "
                        "slower)", name, str(e).splitlines()[0] if str(e) else type(e).__name__)
            _loaded[key] = None
    return _loaded[key]


def fused_adamw():
    """The `hvd_fused_adam_w` op (fused_adamw.cc), or None when unavailable (see `load`)."""
    module = load("fused_adamw")
    return None if module is None else module.hvd_fused_adam_w


def softmax_xent():
    """The op module of softmax_xent.cc (`hvd_softmax_xent`, `hvd_softmax_xent_grad`), or None (see `load`)."""
    return load("softmax_xent")


def gelu():
    """The op module of gelu.cc (`hvd_gelu`, `hvd_gelu_grad`), or None (see `load`)."""
    return load("gelu")


def main(argv=None):
    """`python -m hvd_pretrain.kernels`: build every kernel now; exit 1 with the reason if one fails."""
    names = sorted(f[:-3] for f in os.listdir(_HERE) if f.endswith(".cc"))
    for name in names:
        try:
            print("kernel %s: %s" % (name, build(name)))
        except KernelBuildError as e:
            print("error: kernel %s not built: %s" % (name, e), file=sys.stderr)
            return 1
    return 0
