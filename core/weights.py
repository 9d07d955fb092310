"""Projection weights drawn exactly as chapter 3 draws them.

Each stage calls ``torch.manual_seed(seed)`` and then creates its weights in the book's
order, on the CPU in float32 (the book's default), inside ``torch.random.fork_rng`` so the
caller's global RNG is left as it was. Weights are returned in the ``x @ W`` convention
(W is d_in × d_out; for nn.Linear, W = weight.T), then moved to the trace's device/dtype,
so CPU and GPU traces start from the same numbers.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

ROLES = ("query", "key", "value")


@dataclass(frozen=True)
class Projection:
    """One learned projection x @ W (+ b)."""

    W: torch.Tensor                 # (d_in, d_out)
    b: torch.Tensor | None = None   # (d_out,) or None

    def to(self, device, dtype) -> "Projection":
        return Projection(self.W.to(device=device, dtype=dtype),
                          None if self.b is None else self.b.to(device=device, dtype=dtype))


def _draw(init: str, d_in: int, d_out: int, bias: bool) -> Projection:
    """Draw one projection from the current global RNG, as the book's classes do."""
    if init == "rand":  # SelfAttention_v1: nn.Parameter(torch.rand(d_in, d_out))
        W = torch.rand(d_in, d_out)
        b = torch.rand(d_out) if bias else None
        return Projection(W, b)
    layer = nn.Linear(d_in, d_out, bias=bias)  # SelfAttention_v2, CausalAttention, MHA
    return Projection(layer.weight.detach().T.clone(), None if layer.bias is None else layer.bias.detach().clone())


# Drawing is deterministic in its arguments, so draws are cached: a parameter change that
# does not touch the weights (causal, dropout, text) reuses them. Nothing mutates a weight.
def draw_qkv(init: str, seed: int, d_in: int, d_out: int, bias: bool) -> dict[str, Projection]:
    """W_query, W_key, W_value in that order right after manual_seed(seed) (v1, v2, CausalAttention)."""
    return _draw_qkv_then(init, seed, d_in, d_out, bias)[0]


@functools.lru_cache(maxsize=16)
def _draw_qkv_then(init: str, seed: int, d_in: int, d_out: int, bias: bool) -> tuple[dict[str, Projection], torch.Tensor]:
    """draw_qkv's weights and the RNG state after them: MultiHeadAttention draws the same three
    first (same seed), then out_proj, which continues from that state instead of drawing all again."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        qkv = {role: _draw(init, d_in, d_out, bias) for role in ROLES}
        return qkv, torch.get_rng_state()


@functools.lru_cache(maxsize=8)
def draw_wrapper_heads(init: str, seed: int, d_in: int, head_dim: int, num_heads: int,
                       bias: bool) -> tuple[dict[str, Projection], ...]:
    """MultiHeadAttentionWrapper: num_heads CausalAttention(d_in, head_dim) created one after another."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return tuple({role: _draw(init, d_in, head_dim, bias) for role in ROLES} for _ in range(num_heads))


@functools.lru_cache(maxsize=8)
def draw_fused(init: str, seed: int, d_in: int, d_out: int, bias: bool) -> tuple[dict[str, Projection], Projection]:
    """MultiHeadAttention: W_query, W_key, W_value (d_in × d_out), then out_proj = nn.Linear(d_out, d_out)."""
    drawn, after = _draw_qkv_then(init, seed, d_in, d_out, bias)
    # copies: each stage's intermediates keep their own tensors (a copy costs a tenth of a draw)
    qkv = {role: Projection(p.W.clone(), None if p.b is None else p.b.clone()) for role, p in drawn.items()}
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(after)
        out = _draw("linear", d_out, d_out, True)
        return qkv, out


def draw_dropout_mask(shape: tuple[int, ...], p: float, seed: int) -> torch.Tensor:
    """The keep mask (1 kept, 0 dropped) that nn.Dropout(p) draws after manual_seed(seed).

    Drawn on the CPU in float32, as the book applies it, whatever the trace's device or dtype.
    """
    if p == 0.0:
        return torch.ones(shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.empty(shape).bernoulli_(1.0 - p)
