"""The engine: a second ``ops`` for the stages' forwards (core/stages/ops.py), not a second forward.

- ``SharedOps`` (trainable and causal stages): the stages start with the very projections of
  one another when their weights are the same (same inputs, same seed): the batch's copies are
  views of the trainable Q, K, V (and, for the causal stage, scores);
- ``EngineOps`` (multi-head stage), on top: core.engine.kernels' scores into a pooled buffer,
  chunked masked softmax and row-blocked causal A·V; the masked scores derived on first look and
  V with the context vectors deferred until the weights are drawn (core.engine.lazy);
- ``wrapper``: the multi-head wrapper's terms, all derived on first look.
Each stage run with them gives its chapter numbers (tests/core/engine/test_fast.py).
"""
from __future__ import annotations

import threading
from typing import Callable

import torch

from core.engine import kernels
from core.engine.lazy import Lazy
from core.stages import multihead
from core.stages.ops import Ops, project
from core.weights import ROLES, Projection

NAMES = {"query": "queries", "key": "keys", "value": "values"}


def batched(t: torch.Tensor, b: int) -> torch.Tensor:
    """One sequence's (T, ·) tensor as the batch of b identical copies: (T, ·) -> (b, T, ·), a view."""
    return t.unsqueeze(0).expand(b, *t.shape)


class SharedOps(Ops):
    """The chapter's ops, with Q, K, V (and the scores) shared between stages.

    x: the (T, d_in) inputs whose batch the stage sees as b identical copies; shared: the
    trainable stage's (T, ·) queries, keys, values (and attn_scores) when the stage's weights
    are those, or None. A missing projection is made from ``x`` and added to ``shared``.
    """

    def __init__(self, x: torch.Tensor, shared: dict[str, torch.Tensor] | None, reuse_scores: bool = False):
        super().__init__()
        self.x = x
        self.shared = shared
        self.reuse_scores = reuse_scores and shared is not None and "attn_scores" in shared

    def project(self, x: torch.Tensor, proj, role: str | None = None) -> torch.Tensor:
        if self.shared is None or role is None:
            return project(x, proj)
        name = NAMES[role]
        if name not in self.shared:
            self.shared[name] = project(self.x, proj)                              # (T, d_out)
        return self.shared[name] if x.dim() == 2 else batched(self.shared[name], x.shape[0])   # (b, T, d_out)

    def scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        if self.reuse_scores:
            return batched(self.shared["attn_scores"], queries.shape[0])           # (T, T) -> (b, T, T)
        return super().scores(queries, keys)


class EngineOps(SharedOps):
    """The multi-head stage's tuned steps (core.engine.kernels), with the sharing of SharedOps.

    is_causal: the mask is the lower triangle (the weights are 0 above the diagonal);
    additive: kernels.additive_mask(mask), when the caller keeps it;
    defer: ``later``'s tensors (V and the context vectors) are deferred (core.engine.lazy): the
    attention weights, which need only Q and K, are ready first.
    """

    def __init__(self, x: torch.Tensor, shared: dict[str, torch.Tensor] | None, is_causal: bool,
                 additive: torch.Tensor | None, defer: bool = False):
        super().__init__(x, shared)
        self.is_causal = is_causal
        self.additive = additive
        self.defer = defer
        self._into = self.named                      # where ``record`` writes (a deferred run: its own dict)

    def record(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        self._into[name] = tensor
        return tensor

    def scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return kernels.scores(queries, keys)                                      # into a pooled buffer

    def masked(self, scores: torch.Tensor, mask: torch.Tensor) -> Lazy:
        # h·T² floats (50 MB at 1024 tokens × 12 heads): derived on first look
        return Lazy(lambda: scores.masked_fill(mask == 0, -torch.inf), scores.shape)

    def softmax(self, masked_scores, d_k: int, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return kernels.masked_softmax(scores, mask, d_k, self.additive)          # one buffer, from the scores

    def mix(self, weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        if not self.is_causal:
            return weights @ values
        b, h, num_tokens, hd = values.shape
        merged = torch.empty(b, num_tokens, h, hd, dtype=values.dtype, device=values.device)   # (b, T, h, hd)
        # written through its (b, h, T, hd) transpose, so merging the heads afterwards is a view, not a copy
        return kernels.mix_causal(weights, values, merged.transpose(1, 2))                     # (b, h, T, hd)

    def forget(self) -> None:
        """Let go of what the forward recorded, once the caller has it: a deferred tensor's
        closure keeps this ops (the rest of the forward records through it), so a record kept here
        would make a reference cycle, and the pooled buffers of a trace (scores, weights) would go
        back to the pool only at the next garbage collection, not when the trace is dropped
        (then a fresh 50 MB at 1024 tokens: ~150 ms of page faults)."""
        self.named = self._into = {}

    def later(self, rest: Callable[[], None]) -> None:
        if not self.defer:
            return rest()
        b, h, num_tokens, hd = self.named["queries"].shape                       # MultiHeadAttention's
        shapes = {"values": (b, h, num_tokens, hd), "context_heads": (b, h, num_tokens, hd),
                  "context_concat": (b, num_tokens, h * hd), "context_vecs": (b, num_tokens, h * hd)}

        def run() -> dict:
            out: dict = {}
            self._into = out
            try:
                rest()
            finally:
                self._into = self.named
            return out
        once = _once(run)
        for name, shape in shapes.items():
            self.named[name] = Lazy(lambda name=name: once()[name], shape, deferred=True)


def wrapper(batch: torch.Tensor, draw: Callable[[], tuple[list[dict[str, Projection]], dict[str, torch.Tensor]]],
            mask: torch.Tensor, num_heads: int, head_dim: int, bias: bool) -> dict:
    """multihead.wrapper with everything derived, its weights too: the wrapper is a second
    implementation, shown for comparison, so its 3·h layers are drawn (``draw()``: the heads and
    their stacked weights, core.engine.cache.wrapper_heads) and run when first looked at."""
    b, num_tokens, d_in = batch.shape
    h, hd = num_heads, head_dim
    heads = _once(lambda: dict(zip(("heads", "stacked"), draw())))
    run = _once(lambda: multihead.wrapper(batch, heads()["heads"], mask))

    def drawn() -> dict[str, torch.Tensor]:
        return heads()["stacked"]

    out: dict = {f"wrapper_W_{r}": Lazy(lambda r=r: drawn()[f"wrapper_W_{r}"], (h, d_in, hd)) for r in ROLES}
    if bias:
        out.update({f"wrapper_b_{r}": Lazy(lambda r=r: drawn()[f"wrapper_b_{r}"], (h, hd)) for r in ROLES})
    out["wrapper_attn_weights"] = Lazy(lambda: run()["wrapper_attn_weights"], (b, h, num_tokens, num_tokens))
    out["wrapper_context_vecs"] = Lazy(lambda: run()["wrapper_context_vecs"], (b, num_tokens, h * hd))
    return out


def _once(fn: Callable[[], dict]) -> Callable[[], dict]:
    """``fn()`` (a dict of what a stage derives or defers) computed once, whichever thread asks
    first (the window may look while the trace worker computes; the other waits for it)."""
    memo: dict = {}
    lock = threading.Lock()
    todo = [fn]                                  # dropped once run: what it closed over is freed

    def get() -> dict:
        with lock:
            if not memo:
                memo.update(todo[0]())
                todo.clear()
        return memo
    return get
