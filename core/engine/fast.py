"""The engine's forwards for the causal and multi-head stages: the stages' numbers, faster.

Two ideas on top of core.engine.kernels:
- sharing: the causal stage and MultiHeadAttention start with the very projections of the
  trainable stage when their weights are the same (same inputs, same seed): the batch's
  copies are then views of the trainable Q, K, V (and, for the causal stage, scores);
- derived: the multi-head masked scores and the whole wrapper are computed on first look
  (core.engine.lazy), not on every parameter change.
Each function returns what its stage's ``forward`` returns (tests/core/engine/test_fast.py).
"""
from __future__ import annotations

import threading
from typing import Callable

import torch

from core.engine import kernels
from core.engine.lazy import Lazy
from core.stages import causal as causal_stage
from core.stages import multihead as multihead_stage
from core.stages import trainable as trainable_stage
from core.stages.trainable import project, weights
from core.weights import ROLES, Projection

NAMES = {"query": "queries", "key": "keys", "value": "values"}


def batched(t: torch.Tensor, b: int) -> torch.Tensor:
    """One sequence's (T, ·) tensor as the batch of b identical copies: (T, ·) -> (b, T, ·), a view."""
    return t.unsqueeze(0).expand(b, *t.shape)


def projections(x: torch.Tensor, qkv: dict[str, Projection],
                roles: tuple[str, ...] = ("query", "key", "value")) -> dict[str, torch.Tensor]:
    """The trainable stage's Q, K, V (or those of ``roles``) alone, as its forward computes them
    (T, d_in) -> (T, d_out): projected first when MultiHeadAttention (which shares them) is the
    stage on screen."""
    return {NAMES[role]: project(x, qkv[role]) for role in roles}


def trainable(x: torch.Tensor, qkv: dict[str, Projection], shared: dict[str, torch.Tensor]) -> dict:
    """trainable_stage.forward, with the Q, K, V that ``projections`` already made (same numbers)."""
    if not all(name in shared for name in NAMES.values()):
        return trainable_stage.forward(x, qkv)
    queries, keys, values = shared["queries"], shared["keys"], shared["values"]     # (T, d_out)
    return {**weights(qkv), "queries": queries, "keys": keys, "values": values,
            **trainable_stage.attend(queries, keys, values)}


def causal(batch: torch.Tensor, qkv: dict[str, Projection], mask: torch.Tensor, dropout_mask: torch.Tensor,
           p: float, shared: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """causal_stage.forward, with Q, K, V and the scores taken from ``shared`` (the trainable stage's)."""
    if shared is None:
        return causal_stage.forward(batch, qkv, mask, dropout_mask, p)
    b = batch.shape[0]
    queries, keys, values = (batched(shared[NAMES[r]], b) for r in ("query", "key", "value"))   # (b, T, d_out)
    attn_scores = batched(shared["attn_scores"], b)                                # (T, T) -> (b, T, T)
    masked_scores = attn_scores.masked_fill(mask == 0, -torch.inf)                 # (b, T, T)
    attn_weights = torch.softmax(masked_scores / keys.shape[-1] ** 0.5, dim=-1)    # (b, T, T)
    masked_simple = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1) * mask
    renormalized_weights = causal_stage.renormalize(masked_simple, fallback=attn_weights)
    dropped_weights = attn_weights * dropout_mask / (1 - p)
    context_vecs = dropped_weights @ values                                        # (b, T, d_out)
    return {
        **weights(qkv), "queries": queries, "keys": keys, "values": values, "mask": mask,
        "attn_scores": attn_scores, "masked_scores": masked_scores, "attn_weights": attn_weights,
        "masked_simple": masked_simple, "renormalized_weights": renormalized_weights,
        "dropout_mask": dropout_mask, "dropped_weights": dropped_weights, "context_vecs": context_vecs,
    }


def wrapper(batch: torch.Tensor, draw: Callable[[], tuple[list[dict[str, Projection]], dict[str, torch.Tensor]]],
            mask: torch.Tensor, num_heads: int, head_dim: int, bias: bool) -> dict:
    """multihead_stage.wrapper with everything derived, its weights too: the wrapper is a second
    implementation, shown for comparison, so its 3·h layers are drawn (``draw()``: the heads and
    their stacked weights, core.engine.cache.wrapper_heads) and run when first looked at."""
    b, num_tokens, d_in = batch.shape
    h, hd = num_heads, head_dim
    heads = _once(lambda: dict(zip(("heads", "stacked"), draw())))
    run = _once(lambda: multihead_stage.wrapper(batch, heads()["heads"], mask))

    def drawn() -> dict[str, torch.Tensor]:
        return heads()["stacked"]

    out: dict = {f"wrapper_W_{r}": Lazy(lambda r=r: drawn()[f"wrapper_W_{r}"], (h, d_in, hd)) for r in ROLES}
    if bias:
        out.update({f"wrapper_b_{r}": Lazy(lambda r=r: drawn()[f"wrapper_b_{r}"], (h, hd)) for r in ROLES})
    out["wrapper_attn_weights"] = Lazy(lambda: run()["wrapper_attn_weights"], (b, h, num_tokens, num_tokens))
    out["wrapper_context_vecs"] = Lazy(lambda: run()["wrapper_context_vecs"], (b, num_tokens, h * hd))
    return out


def fused(batch: torch.Tensor, qkv: dict[str, Projection], out_proj: Projection, num_heads: int,
          mask: torch.Tensor, is_causal: bool, additive: torch.Tensor | None,
          shared: dict[str, torch.Tensor] | None, defer: bool = False, x: torch.Tensor | None = None) -> dict:
    """multihead_stage.fused, tuned.

    is_causal: the mask is the lower triangle (the weights are 0 above the diagonal);
    additive: kernels.additive_mask(mask), when the caller keeps it;
    shared: the trainable stage's (T, d_out) queries, keys and values when its weights are these
    (one missing is projected from ``x``, the (T, d_in) inputs, and added to it);
    defer: V and the context vectors are deferred (core.engine.lazy): the attention weights,
    which need only Q and K, are ready first (two of the four d_in × d_out products).
    """
    b, num_tokens, _ = batch.shape
    h = num_heads

    def split(role: str) -> torch.Tensor:
        if shared is None:
            y = project(batch, qkv[role])                                          # (b, T, d_out)
        else:
            if NAMES[role] not in shared:
                shared[NAMES[role]] = project(x, qkv[role])                        # (T, d_out)
            y = batched(shared[NAMES[role]], b)                                    # (b, T, d_out)
        # (b, T, d_out) -> (b, T, h, hd) -> (b, h, T, hd)
        return y.view(b, num_tokens, num_heads, -1).transpose(1, 2)

    queries, keys = split("query"), split("key")                                  # (b, h, T, hd)
    attn_scores = kernels.scores(queries, keys)                                   # (b, h, T, T)
    # h·T² floats each (50 MB at 1024 tokens × 12 heads): the masked scores are derived on first
    # look, the weights computed with one buffer.
    masked_scores = Lazy(lambda: attn_scores.masked_fill(mask == 0, -torch.inf), attn_scores.shape)
    attn_weights = kernels.masked_softmax(attn_scores, mask, keys.shape[-1], additive)   # (b, h, T, T)

    def context() -> dict[str, torch.Tensor]:
        values = split("value")                                                   # (b, h, T, hd)
        hd = values.shape[-1]
        if is_causal:
            merged = torch.empty(b, num_tokens, h, hd, dtype=values.dtype, device=values.device)  # (b, T, h, hd)
            # written through its (b, h, T, hd) transpose, so merging the heads below is a view, not a copy
            context_heads = kernels.mix_causal(attn_weights, values, merged.transpose(1, 2))    # (b, h, T, hd)
        else:
            context_heads = attn_weights @ values                                              # (b, h, T, hd)
        # (b, h, T, hd) -> (b, T, h, hd) -> (b, T, d_out)
        context_concat = context_heads.transpose(1, 2).contiguous().view(b, num_tokens, h * hd)
        context_vecs = project(context_concat, out_proj)                                        # (b, T, d_out)
        return {"values": values, "context_heads": context_heads, "context_concat": context_concat,
                "context_vecs": context_vecs}

    if defer:
        rest = _once(context)
        d_out, hd = out_proj.W.shape[0], out_proj.W.shape[0] // h
        shapes = {"values": (b, h, num_tokens, hd), "context_heads": (b, h, num_tokens, hd),
                  "context_concat": (b, num_tokens, d_out), "context_vecs": (b, num_tokens, d_out)}
        later = {name: Lazy(lambda name=name: rest()[name], shape, deferred=True) for name, shape in shapes.items()}
    else:
        later = context()
    return {
        **weights(qkv), "queries": queries, "keys": keys, "values": later["values"], "attn_scores": attn_scores,
        "masked_scores": masked_scores, "attn_weights": attn_weights, "context_heads": later["context_heads"],
        "context_concat": later["context_concat"], "W_out": out_proj.W, "b_out": out_proj.b,
        "context_vecs": later["context_vecs"],
    }


def _once(fn: Callable[[], dict]) -> Callable[[], dict]:
    """``fn()`` (a dict of what a stage derives or defers) computed once, whichever thread asks
    first (the window may look while the trace worker computes; the other waits for it)."""
    memo: dict = {}
    lock = threading.Lock()

    def get() -> dict:
        with lock:
            if not memo:
                memo.update(fn())
        return memo
    return get
