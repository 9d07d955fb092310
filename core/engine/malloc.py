"""Start-up tuning of glibc's malloc for trace-sized tensors (ctypes only: no torch, no numpy).

Called once by the app's entry points (main.py, core.bench), never at import.
"""
from __future__ import annotations

import ctypes
import sys


def tune_malloc() -> bool:
    """Keep glibc from handing tensors of up to 32 MiB back to the kernel after every trace.

    By default glibc serves a few-MB allocation (a 1024-token Q, K or V is 3 MB) with a fresh
    mmap and unmaps it on free, so every parameter change pays ~10,000 page faults (~7 ms at
    GPT-2 sizes). Raising the mmap threshold to glibc's maximum (32 MiB) and the trim threshold
    keeps that memory in the heap for the next trace. Larger tensors still use mmap (see
    core.engine.buffers). Returns whether the setting took; a no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):      # musl and friends have no mallopt
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = mallopt(M_MMAP_THRESHOLD, 32 * 2**20) == 1
    return mallopt(M_TRIM_THRESHOLD, 256 * 2**20) == 1 and ok
