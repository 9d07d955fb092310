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


CAUSAL_BLOCKS = 8          # row blocks of mix_causal
CAUSAL_MIN_TOKENS = 256    # below this one matmul is faster than the blocks


def mix_causal(weights: torch.Tensor, values: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Context vectors A V when A is 0 above the diagonal, written into ``out`` and returned.

    Row block [r0, r1) of A V needs only the keys [0, r1): the rest of its row of weights is
    exactly 0. At 8 blocks that is ~56 % of the multiply-adds of ``weights @ values``, with the
    same values up to the order in which the kept products are summed (a few ulp).
    ``out`` is a fresh tensor of the result's shape with any strides, e.g. a transposed view
    of a (b, T, h, hd) buffer, so that merging the heads afterwards needs no copy.
    weights: (..., T, T), values: (..., T, d), out: (..., T, d).
    """
    num_tokens = weights.shape[-1]
    if weights.device.type != "cpu" or num_tokens < CAUSAL_MIN_TOKENS:
        out.copy_(weights @ values)                  # one kernel: fastest on a GPU or when small
        return out
    step = -(-num_tokens // CAUSAL_BLOCKS)
    for r0 in range(0, num_tokens, step):
        r1 = min(num_tokens, r0 + step)
        out[..., r0:r1, :] = weights[..., r0:r1, :r1] @ values[..., :r1, :]   # (..., r1-r0, d)
    return out


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


# masked_softmax works through row chunks of about this many elements (1 MiB of float32), so the
# scaled, masked scores of a chunk are still in the core's cache when the softmax reads them.
CHUNK_ELEMENTS = 2**18


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, d_k: int,
                   additive: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(mask_scores(scores, mask) / √d_k), the same numbers with a single new buffer.

    Scaling first and masking after gives the same values (−∞/√d_k = −∞), so the masked
    scores need not be materialised. Large CPU inputs go through row chunks: each chunk is
    scaled and masked into a small scratch buffer, then its softmax is written into the
    result, so no full-size scaled copy is written and read back. The in-place ops act only on
    buffers this function allocates, never on a tensor a learner sees.
    scores: (..., T, T); mask: (T, T), 1 = keep; additive: additive_mask(mask), if already made.
    """
    root = math.sqrt(d_k)
    power_of_two = root == 2.0 ** round(math.log2(root))
    if power_of_two and additive is None:
        additive = additive_mask(mask)
    hidden = None if power_of_two else (mask == 0)

    def scaled_masked(src: torch.Tensor, r0: int, r1: int, dst: torch.Tensor) -> None:
        """dst = src / √d_k with −∞ where rows r0:r1 of the mask hide a score."""
        if power_of_two:
            # x · (1/√d_k) is exactly x / √d_k: scale and mask in one pass (+0 kept, +−∞ hidden)
            torch.add(additive[r0:r1], src, alpha=1.0 / root, out=dst)
        else:
            torch.div(src, root, out=dst)
            dst.masked_fill_(hidden[r0:r1], float("-inf"))

    weights = buffers.empty(tuple(scores.shape), scores.dtype, scores.device)          # (..., T, T)
    rows, cols = scores.shape[-2], scores.shape[-1]
    big = scores.numel() * scores.element_size() >= buffers.MIN_BYTES
    if scores.device.type != "cpu" or not big or not scores.is_contiguous():
        scaled_masked(scores, 0, rows, weights)
        return torch.softmax(weights, dim=-1, out=weights)       # softmax in place
    src = scores.view(-1, rows, cols)                            # (N, T, T), N = b·h
    dst = weights.view(-1, rows, cols)                           # (N, T, T)
    chunk = max(1, min(rows, CHUNK_ELEMENTS // max(cols, 1)))
    scratch = torch.empty(chunk, cols, dtype=scores.dtype)       # (chunk, T)
    for n in range(src.shape[0]):
        for r0 in range(0, rows, chunk):
            r1 = min(rows, r0 + chunk)
            part = scratch[: r1 - r0]
            scaled_masked(src[n, r0:r1], r0, r1, part)
            torch.softmax(part, dim=-1, out=dst[n, r0:r1])
    return weights


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
