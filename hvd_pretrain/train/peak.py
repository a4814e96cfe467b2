"""Measured dense-matmul peak: the denominator of MFU on machines without a datasheet figure (CPUs).

Times square [n, n] x [n, n] matmuls in the TensorFlow the caller passes in
(so the measurement uses the same build, threads and device placement as the
training step) and returns the best achieved FLOP/s over a few repetitions,
counting 2*n^3 FLOPs per matmul as the model FLOP counter does.
"""

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
