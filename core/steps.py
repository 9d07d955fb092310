"""One small pure function per step of chapter 3's attention.

Every function returns a new tensor and leaves its arguments untouched (no in-place op), so
each intermediate a learner looks at keeps its value. Shapes in comments use T (tokens),
d_in, d_out, h (heads), hd (head_dim) and an optional leading batch dim b ("...").
"""
from __future__ import annotations

import math

import torch

from core import buffers

from core.weights import Projection


def dot_scores(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """ω = Q Kᵀ: (..., T, d) × (..., T, d) -> (..., T, T)."""
    shape = tuple(queries.shape[:-1]) + (keys.shape[-2],)
    out = buffers.empty(shape, queries.dtype, queries.device)
    return torch.matmul(queries, keys.transpose(-2, -1), out=out)


def sum_normalize(scores: torch.Tensor) -> torch.Tensor:
    """The naive normalisation ω / Σω along each row (not what attention uses)."""
    return scores / scores.sum(dim=-1, keepdim=True)


def softmax_rows(scores: torch.Tensor) -> torch.Tensor:
    """softmax along each row (the keys axis)."""
    return torch.softmax(scores, dim=-1)


def softmax_naive(scores: torch.Tensor) -> torch.Tensor:
    """exp(ω) / Σ exp(ω), the book's softmax_naive (overflows for large scores)."""
    exp = torch.exp(scores)
    return exp / exp.sum(dim=-1, keepdim=True)


def mix(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Context vectors: (..., T, T) @ (..., T, d) -> (..., T, d)."""
    return weights @ values


def project(x: torch.Tensor, proj: Projection) -> torch.Tensor:
    """x @ W (+ b): (..., T, d_in) -> (..., T, d_out)."""
    out = x @ proj.W
    return out if proj.b is None else out + proj.b


def scale(scores: torch.Tensor, d_k: int) -> torch.Tensor:
    """scores / √d_k."""
    return scores / math.sqrt(d_k)


def causal_mask(num_tokens: int, causal: bool, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """1 where a query may attend: the lower triangle (causal) or everywhere. (T, T)."""
    ones = torch.ones(num_tokens, num_tokens, device=device, dtype=dtype)
    return torch.tril(ones) if causal else ones


def mask_scores(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Approach B's first half: −inf where the mask is 0 (a new tensor, unlike masked_fill_)."""
    return scores.masked_fill(mask == 0, float("-inf"))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, d_k: int) -> torch.Tensor:
    """softmax(mask_scores(scores, mask) / √d_k), the same numbers with a single new buffer.

    Scaling first and masking after gives the same values (−∞/√d_k = −∞), so the masked
    scores need not be materialised. The in-place ops act only on the fresh buffer this
    function allocates, never on a tensor a learner sees.
    """
    root = math.sqrt(d_k)
    if root == 2.0 ** round(math.log2(root)):
        # √d_k is a power of two (d_k = 1, 4, 16, 64, …): x · (1/√d_k) is exactly x / √d_k, so
        # scale and mask in one pass: −inf (masked) or 0 (kept), plus the scaled score.
        weights = buffers.empty(tuple(scores.shape), scores.dtype, scores.device)      # (..., T, T)
        torch.add(additive_mask(mask), scores, alpha=1.0 / root, out=weights)
    else:
        weights = scores / root                              # (..., T, T), a new tensor
        weights.masked_fill_(mask == 0, float("-inf"))       # our own buffer
    return torch.softmax(weights, dim=-1, out=weights)       # softmax in place


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """0 where the mask keeps a score, −inf where it hides one: (T, T)."""
    return torch.zeros_like(mask).masked_fill(mask == 0, float("-inf"))


def zero_masked(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Approach A's first half: softmax weights × mask (rows no longer sum to 1)."""
    return weights * mask


def renormalize(weights: torch.Tensor, fallback: torch.Tensor | None = None) -> torch.Tensor:
    """Approach A's second half: divide each row by its sum.

    When scores lie far apart, softmax can underflow every kept weight of a row to 0 (or to
    imprecise subnormals), and the division gives 0/0 = nan. Such rows take ``fallback``'s row
    (approach B's weights: the same values, computed without the underflow).
    """
    out = weights / weights.sum(dim=-1, keepdim=True)
    if fallback is None:
        return out
    info = torch.finfo(weights.dtype)
    trusted = weights.amax(dim=-1, keepdim=True) >= info.tiny / info.eps  # the row's largest weight is exact
    return torch.where(trusted, out, fallback)


def apply_dropout(weights: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """nn.Dropout in training mode: kept weights × 1/(1−p), dropped ones 0."""
    return weights * keep / (1.0 - p)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(b, T, d_out) -> view (b, T, h, hd) -> transpose (b, h, T, hd)."""
    b, num_tokens, d_out = x.shape
    head_dim = d_out // num_heads
    return x.view(b, num_tokens, num_heads, head_dim).transpose(1, 2)  # (b, h, T, hd)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(b, h, T, hd) -> transpose (b, T, h, hd) -> contiguous view (b, T, h·hd)."""
    b, num_heads, num_tokens, head_dim = x.shape
    return x.transpose(1, 2).contiguous().view(b, num_tokens, num_heads * head_dim)  # (b, T, d_out)
