"""Tuned versions of three steps of the multi-head stage: the same numbers, less time and memory.

Each function equals a line of core/stages/multihead.py (tests/core/engine/test_kernels.py):
- ``scores``         = ``queries @ keys.transpose(2, 3)``, into a pooled buffer;
- ``masked_softmax`` = ``torch.softmax(scores.masked_fill(mask == 0, -inf) / √d_k, dim=-1)``,
                       in row chunks with one scratch buffer;
- ``mix_causal``     = ``weights @ values`` when the weights are 0 above the diagonal, in row blocks.
In-place ops act only on buffers these functions allocate, never on a tensor a learner sees.
"""
from __future__ import annotations

import math

import torch

from core.engine import buffers

CAUSAL_BLOCKS = 8          # row blocks of mix_causal
CAUSAL_MIN_TOKENS = 256    # below this one matmul is faster than the blocks
# masked_softmax works through row chunks of about this many elements (1 MiB of float32), so the
# scaled, masked scores of a chunk are still in the core's cache when the softmax reads them.
CHUNK_ELEMENTS = 2**18


def scores(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Q Kᵀ: (..., T, d) × (..., T, d) -> (..., T, T), written into a pooled buffer."""
    shape = tuple(queries.shape[:-1]) + (keys.shape[-2],)
    out = buffers.empty(shape, queries.dtype, queries.device)
    return torch.matmul(queries, keys.transpose(-2, -1), out=out)


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """0 where the mask keeps a score, −inf where it hides one: (T, T)."""
    return torch.zeros_like(mask).masked_fill(mask == 0, float("-inf"))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, d_k: int,
                   additive: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(scores.masked_fill(mask == 0, −∞) / √d_k), with a single new buffer.

    Scaling first and masking after gives the same values (−∞/√d_k = −∞), so the masked
    scores need not be materialised. Large CPU inputs go through row chunks: each chunk is
    scaled and masked into a small scratch buffer, then its softmax is written into the
    result, so no full-size scaled copy is written and read back.
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
        return torch.softmax(weights, dim=-1, out=weights)       # softmax in place, in our own buffer
    src = scores.view(-1, rows, cols)                            # (..., T, T) -> (N, T, T), N = b·h
    dst = weights.view(-1, rows, cols)                           # (..., T, T) -> (N, T, T)
    chunk = max(1, min(rows, CHUNK_ELEMENTS // max(cols, 1)))
    scratch = torch.empty(chunk, cols, dtype=scores.dtype)       # (chunk, T)
    for n in range(src.shape[0]):
        for r0 in range(0, rows, chunk):
            r1 = min(rows, r0 + chunk)
            part = scratch[: r1 - r0]
            scaled_masked(src[n, r0:r1], r0, r1, part)
            torch.softmax(part, dim=-1, out=dst[n, r0:r1])
    return weights


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
