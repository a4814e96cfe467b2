"""Ragged gathers in NumPy: many (start, length) ranges -> one flat index array, without a Python loop."""

import numpy as np


def ragged_index(starts, lengths):
    """starts[0] .. starts[0]+lengths[0]-1, then starts[1] .. starts[1]+lengths[1]-1, ... as one int64 array."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(offsets[-1] + lengths[-1]) if lengths.size else 0)
