"""Who the trainer reduces with, and in which groups: the communicators and the gradient buckets.

LocalCommunicator is world size 1; HorovodCommunicator sums over Horovod's ranks. The buckets group
the gradients for the allreduce that overlaps backward (train/accumulate.py).
"""


class LocalCommunicator:
    """World size 1: reductions are identities."""

    size = 1
    rank = 0

    def allreduce_sum(self, tensor):
        return tensor

    def grouped_allreduce_sum(self, tensors):
        return list(tensors)


class HorovodCommunicator:
    """Sum reductions over all Horovod ranks (one grouped call for many tensors).

    Size and rank are read from Horovod at each use, so the communicator stays right after an
    elastic job re-initialises Horovod in a new world.
    """

    def __init__(self, hvd, compression=None):
        self.hvd = hvd
        self.compression = compression or hvd.Compression.none

    @property
    def size(self):
        return self.hvd.size()

    @property
    def rank(self):
        return self.hvd.rank()

    def allreduce_sum(self, tensor):
        return self.hvd.allreduce(tensor, op=self.hvd.Sum, name="step_counts")

    def grouped_allreduce_sum(self, tensors):
        return self.hvd.grouped_allreduce(list(tensors), op=self.hvd.Sum, compression=self.compression)


DEFAULT_BUCKET_MB = 25.0


def gradient_buckets(sizes_bytes, bucket_mb, forward_order=None):
    """Groups of variable indices for the overlapped allreduce, in the order backward produces them.

    sizes_bytes: the trainable variables' sizes in bytes. forward_order: their indices in the order
    the forward pass first uses them (default: index order); backward completes a gradient roughly in
    the reverse of that order, and a variable used again later (a tied or shared weight) only once
    backward has passed its first use. Returns lists of indices, walking `forward_order` from the end
    and closing a group once it holds at least `bucket_mb` MB (PyTorch DDP's bucket_cap_mb, default
    25). bucket_mb <= 0: one group of every variable, reduced after backward (no overlap).
    """
    order = list(forward_order if forward_order is not None else range(len(sizes_bytes)))[::-1]
    if bucket_mb <= 0:
        return [order] if order else []
    cap = float(bucket_mb) * 2 ** 20
    groups, current, held = [], [], 0
    for i in order:
        current.append(i)
        held += sizes_bytes[i]
        if held >= cap:
            groups.append(current)
            current, held = [], 0
    if current:
        groups.append(current)
    return groups


def first_use_order(variables, watched):
    """Indices of `variables` in the order of `watched` (a tape's watched variables: the order of
    creation, which for layers built by their first call is the forward pass's order); the rest after."""
    index = {v.ref(): i for i, v in enumerate(variables)}
    order = [index[w.ref()] for w in watched if w.ref() in index]
    seen = set(order)
    return order + [i for i in range(len(variables)) if i not in seen]
