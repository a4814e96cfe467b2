"""Horovod set-up: init, device pinning, CPU threads, broadcast helpers.

This module and the CLIs are the only places Horovod is imported.
"""

import os

from hvd_pretrain.tfcompat import tf


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def init_horovod(threads=0):
    """Initialise Horovod, pin one GPU per local rank, or split the CPU cores between local ranks.

    Must run before TensorFlow executes its first op (threading is fixed then).
    Works without horovodrun too: a single process is a world of size 1.
    """
    import horovod.tensorflow as hvd

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        # Ranks share the CPU cores here: let idle MPI ranks yield instead of busy-polling.
        os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    hvd.init()
    if gpus:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        tf.config.set_visible_devices(gpus[hvd.local_rank() % len(gpus)], "GPU")
    else:
        per_rank = threads or max(1, available_cores() // max(1, hvd.local_size()))
        tf.config.threading.set_intra_op_parallelism_threads(per_rank)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, per_rank)))
    return hvd


def optimizer_variables(optimizer):
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


def broadcast_state(hvd, model, optimizer, root_rank=0):
    """Make every rank hold rank 0's model weights and optimizer slots (call once slots exist)."""
    hvd.broadcast_variables(list(model.variables) + optimizer_variables(optimizer), root_rank=root_rank)


def gather_rows(hvd):
    """A function that allgathers one row of floats per rank, returning a list indexed by rank."""
    def gather(row):
        rows = hvd.allgather(tf.constant([row], tf.float64), name="rank_times")
        return rows.numpy().tolist()
    return gather


def weights_digest(model):
    """SHA-256 over every model variable's bytes, in a fixed order: equal on all ranks iff weights are."""
    import hashlib

    digest = hashlib.sha256()
    for var in sorted(model.variables, key=lambda v: v.name):
        digest.update(var.name.encode())
        digest.update(var.numpy().tobytes())
    return digest.hexdigest()
