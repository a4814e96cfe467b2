"""Let a data worker keep the memory it frees, instead of returning it to the kernel at once (glibc).

Instance creation allocates and frees NumPy arrays of a few MB for every batch.
With glibc's defaults each such block is mapped fresh from the kernel and
faulted in page by page, which can cost more system time than the work itself,
most of all in virtual machines. Raising the mmap and trim thresholds makes
malloc reuse those blocks. Elsewhere (another C library, another OS) this does
nothing.
"""

import ctypes
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_memory(block_limit=64 << 20):
    """Serve blocks up to block_limit bytes from the reused heap, and keep up to 4x that free; True if applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, block_limit)) and bool(mallopt(_M_TRIM_THRESHOLD, 4 * block_limit))
