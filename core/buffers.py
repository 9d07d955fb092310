"""Reuse the memory of large CPU intermediates whose trace nobody holds any more.

A fresh 50 MB tensor costs ~9 ms of page faults before a single value is written (12 heads ×
1024² floats), and every parameter change at GPT-2 scale makes several. Like torch's own CUDA
caching allocator, this pool keeps the big buffers of earlier traces and hands one out again
only when nothing else refers to its memory (no tensor, view or numpy array: the storage's
use count says so), so a value a learner may still be looking at is never overwritten.
"""
from __future__ import annotations

import ctypes
import sys
import threading

import torch

MIN_BYTES = 8 * 2**20          # smaller tensors: the allocator's own reuse is fast enough
MAX_POOL_BYTES = 1 * 2**30     # never keep more than this in the pool
_use_count = getattr(torch._C, "_storage_Use_Count", None)

_lock = threading.Lock()
_pool: list[torch.Tensor] = []


def _is_free(t: torch.Tensor) -> bool:
    # our reference in the pool + the temporary storage object made here = 2
    return _use_count(t.untyped_storage()._cdata) <= 2


def empty(shape: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
    """Like torch.empty, but large CPU buffers come from an unreferenced earlier one when possible."""
    numel = 1
    for n in shape:
        numel *= n
    itemsize = torch.empty((), dtype=dtype).element_size()
    if _use_count is None or torch.device(device).type != "cpu" or numel * itemsize < MIN_BYTES:
        return torch.empty(shape, dtype=dtype, device=device)
    with _lock:
        for t in _pool:
            if t.dtype == dtype and t.numel() == numel and _is_free(t):
                return t.view(shape)  # a new view: its own reference to the storage
        fresh = torch.empty(shape, dtype=dtype, device=device)
        _pool.append(fresh)
        # forget the oldest free buffers beyond the budget (torch frees them)
        total = sum(t.numel() * t.element_size() for t in _pool)
        for t in list(_pool):
            if total <= MAX_POOL_BYTES:
                break
            if t is not fresh and _is_free(t):
                # by identity: list.remove would compare tensors with ==, elementwise
                _pool[:] = [p for p in _pool if p is not t]
                total -= t.numel() * t.element_size()
        # hand out a view, never the pooled tensor itself: the view's reference to the storage
        # is what marks the buffer as in use (references to one tensor object do not count)
        return fresh.view(shape)


def tune_malloc() -> bool:
    """Keep glibc from handing tensors of up to 32 MiB back to the kernel after every trace.

    By default glibc serves a few-MB allocation (a 1024-token Q, K or V is 3 MB) with a fresh
    mmap and unmaps it on free, so every parameter change pays ~10,000 page faults (~7 ms at
    GPT-2 sizes). Raising the mmap threshold to glibc's maximum (32 MiB) and the trim threshold
    keeps that memory in the heap for the next trace. Larger tensors still use mmap (see the
    pool above). Returns whether the setting took; a no-op off glibc.
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


TUNED = tune_malloc()


def clear() -> None:
    with _lock:
        _pool.clear()
