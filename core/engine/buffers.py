"""A pool of large CPU buffers, reused once nothing refers to them any more.

A fresh 50 MB tensor costs ~9 ms of page faults before a single value is written (12 heads ×
1024² floats), and every parameter change at GPT-2 scale makes several. Like torch's own CUDA
caching allocator, the pool keeps the big buffers of earlier traces and hands one out again
only when it is free. (Start-up tuning of glibc's malloc is in core/engine/malloc.py.)

Ownership is explicit, with public API only: the pool allocates each buffer with torch.empty
(so it gets torch's huge pages) and keeps it; it lends out ``torch.from_numpy`` of a fresh
numpy array over that memory. Every tensor, view or numpy array made from what was lent keeps
that array alive (torch's storage holds it), so the buffer is free exactly when a weak
reference to the array is dead.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
import torch

MIN_BYTES = 8 * 2**20          # smaller tensors: the allocator's own reuse is fast enough
MAX_POOL_BYTES = 1 * 2**30     # never keep more than this in the pool


@dataclass(eq=False)
class _Buffer:
    memory: torch.Tensor                                # what the pool owns (1-D, CPU)
    lent: weakref.ref | None = None                     # the array lent out last, while alive

    @property
    def free(self) -> bool:
        return self.lent is None or self.lent() is None

    @property
    def nbytes(self) -> int:
        return self.memory.numel() * self.memory.element_size()


class BufferPool:
    """Large CPU buffers handed out as tensors, reused when nothing refers to them."""

    def __init__(self, min_bytes: int = MIN_BYTES, max_bytes: int = MAX_POOL_BYTES):
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._buffers: list[_Buffer] = []

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
        """Like torch.empty; large CPU float buffers come from a free earlier one when possible."""
        numel = int(np.prod(shape, dtype=np.int64))
        if (dtype not in (torch.float32, torch.float64) or torch.device(device).type != "cpu"
                or numel * torch.empty((), dtype=dtype).element_size() < self.min_bytes):
            return torch.empty(shape, dtype=dtype, device=device)
        with self._lock:
            buf = next((b for b in self._buffers
                        if b.free and b.memory.dtype == dtype and b.memory.numel() == numel), None)
            if buf is None:
                buf = _Buffer(torch.empty(numel, dtype=dtype))
                self._buffers.append(buf)
                self._trim(keep=buf)
            lent = buf.memory.numpy()              # a new array object over the memory: alive while anything uses it
            buf.lent = weakref.ref(lent)
            return torch.from_numpy(lent).view(shape)

    def _trim(self, keep: _Buffer) -> None:
        """Forget the oldest free buffers beyond the budget (torch frees them)."""
        total = sum(b.nbytes for b in self._buffers)
        for b in list(self._buffers):
            if total <= self.max_bytes:
                break
            if b is not keep and b.free:
                self._buffers.remove(b)
                total -= b.nbytes

    @property
    def pooled_bytes(self) -> int:
        return sum(b.nbytes for b in self._buffers)

    def owns(self, t: torch.Tensor) -> bool:
        """Whether ``t``'s memory is one of the pool's buffers."""
        return any(b.memory.data_ptr() == t.untyped_storage().data_ptr() for b in self._buffers)

    def clear(self) -> None:
        with self._lock:
            self._buffers.clear()


POOL = BufferPool()


def empty(shape: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
    return POOL.empty(shape, dtype, device)


def clear() -> None:
    POOL.clear()
