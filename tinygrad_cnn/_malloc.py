"""Keep freed memory in the process instead of returning it to the OS after every step.

A training step allocates and frees tens of MB of arrays. With glibc's defaults the
heap is trimmed back to the OS after each step and grown again in the next, and every
page of a new array is then a page fault: about 3 ms of a 14 ms SimpleConvNet step
(docs/performance.md). Raising the trim and mmap thresholds, as PyTorch's caching
allocator does in its own way, keeps those pages. Set TINYGRAD_CNN_MALLOC=default to
leave the allocator alone. Does nothing where glibc's mallopt is not available.
"""
import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_BYTES = 256 << 20  # keep up to 256 MiB of free heap
MMAP_BYTES = 32 << 20  # arrays under 32 MiB come from the heap, not fresh mmaps


def tune() -> bool:
    """Apply the thresholds; returns True when they were set."""
    if os.environ.get("TINYGRAD_CNN_MALLOC", "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES))
