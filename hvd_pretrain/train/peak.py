"""Measured dense-matmul peak: the denominator of MFU on machines without a datasheet figure (CPUs).

Times square [n, n] x [n, n] matmuls in the TensorFlow the caller passes in
(so the measurement uses the same build, threads and device placement as the
training step) and returns the best achieved FLOP/s over a few repetitions,
counting 2*n^3 FLOPs per matmul as the model FLOP counter does.
"""

import os
import time


def measure_matmul_peak(tf, n=1024, dtype="float32", repeats=5, min_seconds=0.2, device=None):
    """Best achieved FLOP/s of n x n matmuls in `tf` (a module, e.g. hvd_pretrain.tfcompat.tf).

    Each repetition runs enough back-to-back matmuls to last at least
    `min_seconds`; the result of the last one is fetched to the host so the
    timing covers completed work. `device` (e.g. "/GPU:0") pins the work.
    """
    n, repeats = int(n), int(repeats)
    if n < 1 or repeats < 1 or not min_seconds > 0:
        raise ValueError("measure_matmul_peak needs n >= 1, repeats >= 1 and min_seconds > 0 "
                         "(got n=%r, repeats=%r, min_seconds=%r)" % (n, repeats, min_seconds))
    dtype = tf.as_dtype(dtype)
    if not dtype.is_floating:
        raise ValueError("measure_matmul_peak dtype=%r must be a floating-point type" % dtype.name)
    flops_per_matmul = 2.0 * n * n * n
    scope = tf.device(device) if device else _NullScope()
    with scope:
        a = tf.cast(tf.random.stateless_uniform((n, n), seed=(1, 2), minval=-1.0, maxval=1.0), dtype)
        b = tf.cast(tf.random.stateless_uniform((n, n), seed=(3, 4), minval=-1.0, maxval=1.0), dtype)

        def timed(count):
            start = time.perf_counter()
            out = None
            for _ in range(count):
                out = tf.matmul(a, b)
            out[0, 0].numpy()  # wait for completion (asynchronous devices)
            return time.perf_counter() - start

        timed(1)  # warm-up: kernel selection, thread pools, allocation
        count = 1
        elapsed = timed(count)
        while elapsed < min_seconds:
            count = max(count + 1, int(count * min_seconds / max(elapsed, 1e-9) * 1.2))
            elapsed = timed(count)
        best = count * flops_per_matmul / elapsed
        for _ in range(repeats - 1):
            best = max(best, count * flops_per_matmul / timed(count))
    return best


class _NullScope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class PeakEstimate:
    """A rank's peak FLOP/s for MFU: a datasheet figure, or the best rate measured on this machine.

    A measured matmul rate is a lower bound of the machine's peak, and a transient load at
    the moment of measuring lowers it (a busy 2-core machine measures about half). So a
    measured estimate:

    * is the maximum over every measurement: at start-up, again after logging windows 1, 2,
      4, 8, ... (each a fraction of a second), and the best kept from earlier runs with the
      same host, processor, thread count and TensorFlow in `cache_path` (a JSON file);
    * is raised to the model FLOP/s the rank achieved when that is higher, since achieved
      work is measured too. MFU therefore never exceeds 1.

    measure: a function returning one measurement in FLOP/s (e.g. measure_matmul_peak).
    fixed: a datasheet peak in FLOP/s; then nothing is measured.
    """

    def __init__(self, measure=None, fixed=None, source="", cache_path=None):
        if (measure is None) == (fixed is None):
            raise ValueError("PeakEstimate needs exactly one of measure and fixed")
        self.measure = measure
        self.source = source
        self.cache_path = cache_path
        self.flops = float(fixed) if fixed is not None else 0.0
        self.measurements = 0
        if measure is not None:
            self.flops = max(self._cached(), 0.0)
            self.remeasure()

    @property
    def measured(self):
        return self.measure is not None

    def _cached(self):
        from hvd_pretrain.rundir import read_json
        saved = read_json(self.cache_path) if self.cache_path else None
        return float(saved.get("flops", 0.0)) if isinstance(saved, dict) else 0.0

    def _save(self):
        if not self.cache_path or self.flops <= self._cached():
            return
        from hvd_pretrain.rundir import write_json_atomic
        try:
            write_json_atomic(self.cache_path, {"flops": self.flops, "measurements": self.measurements})
        except OSError:  # a read-only cache only costs the next run a fresh measurement
            return

    def remeasure(self):
        """One more measurement; the estimate keeps the best. Returns the estimate in FLOP/s."""
        if self.measure is None:
            return self.flops
        self.measurements += 1
        self.flops = max(self.flops, float(self.measure()))
        self._save()
        return self.flops

    def due(self, window_index):
        """True after logging windows 1, 2, 4, 8, ... of a measured estimate."""
        return self.measured and window_index >= 1 and window_index & (window_index - 1) == 0

    def mfu(self, achieved_flops):
        """achieved / peak for one rank's model FLOP/s; raises the estimate when it is exceeded."""
        if not self.flops > 0:
            return None
        if achieved_flops > self.flops and self.measured:
            self.flops = float(achieved_flops)
            self._save()
        return achieved_flops / self.flops


def peak_cache_path(cache_dir, threads, tf_version):
    """Where the best measured peak of this host, processor, thread count and TensorFlow is kept."""
    import platform
    import re
    import socket
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    key = "%s-%s-t%d-tf%s" % (socket.gethostname(), cpu, int(threads), tf_version)
    return os.path.join(cache_dir, "peak", re.sub(r"[^A-Za-z0-9_.-]+", "_", key) + ".json")
