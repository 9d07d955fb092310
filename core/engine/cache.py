"""What the engine keeps between traces: masks, dropout masks and weights on the trace's device.

All are deterministic in their arguments and never changed in place, so a parameter change
that does not touch them (text, dropout, causal…) reuses them. The draws themselves are
cached in core.weights.
"""
from __future__ import annotations

import functools

import torch

from core import weights
from core.engine import kernels
from core.stages import causal, multihead


@functools.lru_cache(maxsize=4)
def causal_mask(num_tokens: int, is_causal: bool, device: str, dtype: torch.dtype) -> torch.Tensor:
    """The (T, T) mask, built once per size: 4 MB at 1024 tokens."""
    return causal.causal_mask(num_tokens, is_causal, device=device, dtype=dtype)


@functools.lru_cache(maxsize=4)
def additive_mask(num_tokens: int, is_causal: bool, device: str, dtype: torch.dtype) -> torch.Tensor:
    """0 kept / −∞ hidden, (T, T): what the multi-head softmax adds to the scaled scores."""
    return kernels.additive_mask(causal_mask(num_tokens, is_causal, device, dtype))


@functools.lru_cache(maxsize=1)
def dropout_mask(shape: tuple[int, ...], p: float, seed: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """The (b, T, T) keep mask, drawn on the CPU as the book draws it, then moved."""
    return weights.draw_dropout_mask(shape, p, seed).to(device, dtype)


# On a GPU, copying ~40 weight matrices per parameter change costs more than the trace.
@functools.lru_cache(maxsize=8)
def qkv(init: str, seed: int, d_in: int, d_out: int, bias: bool, device: str,
        dtype: torch.dtype) -> dict[str, weights.Projection]:
    drawn = weights.draw_qkv(init, seed, d_in, d_out, bias)
    return {r: p.to(device, dtype) for r, p in drawn.items()}


@functools.lru_cache(maxsize=4)
def wrapper_heads(init: str, seed: int, d_in: int, head_dim: int, num_heads: int, bias: bool, device: str,
                  dtype: torch.dtype) -> tuple[list[dict[str, weights.Projection]], dict[str, torch.Tensor]]:
    """The wrapper's heads on the device, and their stacked weights (multihead.stack_heads)."""
    heads = weights.draw_wrapper_heads(init, seed, d_in, head_dim, num_heads, bias)
    heads = [{r: p.to(device, dtype) for r, p in h.items()} for h in heads]
    return heads, multihead.stack_heads(heads)


@functools.lru_cache(maxsize=4)
def fused(init: str, seed: int, d_in: int, d_out: int, bias: bool, device: str,
          dtype: torch.dtype) -> tuple[dict[str, weights.Projection], weights.Projection]:
    qkv_, out_proj = weights.draw_fused(init, seed, d_in, d_out, bias)
    return {r: p.to(device, dtype) for r, p in qkv_.items()}, out_proj.to(device, dtype)


@functools.lru_cache(maxsize=8)
def same_first_layers(*draw: object) -> bool:
    """Whether MultiHeadAttention's W_query, W_key, W_value (and biases) are the trainable stage's.

    draw: (init, seed, d_in, d_out, bias, device, dtype), as qkv and fused take them. The same
    seed draws the same first three layers, so the fused stage can reuse the trainable Q, K, V.
    """
    mine = qkv(*draw)
    theirs, _out = fused(*draw)

    def same(a, b) -> bool:
        return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
    return all(same(mine[r].W, theirs[r].W) and same(mine[r].b, theirs[r].b) for r in weights.ROLES)
