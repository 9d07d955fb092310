"""A derived intermediate: computed on first access (once, then kept), from tensors the trace
already holds.

The engine makes the heavy, rarely looked-at intermediates (the multi-head masked scores,
the wrapper) derived: an explicit opt-out of computing them on every parameter change.
A *deferred* one is computed anyway, right after the stage on screen has been delivered
(core.trace.build_trace_in_steps): MultiHeadAttention's V and context vectors wait until its
attention weights are drawn.
"""
from __future__ import annotations

import threading
from typing import Callable

import torch


class Lazy:
    """A tensor of known shape whose value is ``fn()``, computed once (whichever thread asks
    first; the others wait for it) and then kept; squeeze(0) stays lazy."""

    def __init__(self, fn: Callable[[], torch.Tensor], shape: tuple[int, ...], deferred: bool = False):
        self._fn = fn
        self.shape = torch.Size(shape)
        self._lock = threading.Lock()
        self._value: torch.Tensor | None = None
        self.deferred = deferred        # computed after the visible stage is delivered, not on first look

    @property
    def ready(self) -> bool:
        """Whether the value has been computed."""
        return self._value is not None

    def value(self) -> torch.Tensor:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self.compute()
        return self._value

    def compute(self) -> torch.Tensor:
        """``fn()`` afresh (``value`` keeps it)."""
        with torch.no_grad():
            out = self._fn()
        if tuple(out.shape) != tuple(self.shape):
            raise AssertionError(f"derived tensor has shape {tuple(out.shape)}, expected {tuple(self.shape)}")
        return out

    def squeeze(self, dim: int) -> "Lazy":
        if self.shape[dim] != 1:
            return self
        shape = tuple(n for i, n in enumerate(self.shape) if i != dim)
        return Lazy(lambda: self._fn().squeeze(dim), shape, self.deferred)

    def dim(self) -> int:
        return len(self.shape)
