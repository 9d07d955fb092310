"""Downsampling that keeps a thin pattern visible: each drawn cell is the largest of its block.

Picking every k-th row and column (a stride) drops a one-cell stripe such as a
previous-token head's sub-diagonal whenever it falls between the picked rows; the mean of a
block dims it to 1/k². The maximum keeps it at full strength. Used by the head gallery's
thumbnails (max over blocks) and by the heatmaps of attention weights drawn smaller than one pixel a
cell (max over each sampled row's column blocks).
"""
from __future__ import annotations

import math

import numpy as np


def max_pooled(weights: np.ndarray, size: int) -> np.ndarray:
    """(…, T, T) -> (…, size, size) by the largest weight in each block (T > size)."""
    edges = np.linspace(0, weights.shape[-1], size + 1).astype(np.intp)[:-1]
    rows = np.maximum.reduceat(weights, edges, axis=-2)
    return np.maximum.reduceat(rows, edges, axis=-1)


def max_pool_stride(rows: np.ndarray, stride: int) -> np.ndarray:
    """(R', C) -> (R', ⌈C/stride⌉): each cell the largest finite value of its ``stride`` columns
    (the columns of ``img[::stride, ::stride]``); ``rows`` are the map's every ``stride``-th row
    already (a heatmap draws one pixel row per sampled row, so pooling down the rows too cost 6×
    the time for no stripe kept: a stripe crosses every row). A block of only NaN (masked) cells
    stays NaN."""
    if stride <= 1:
        return rows
    r, c = rows.shape
    k = math.ceil(c / stride)
    if k * stride != c:                                         # the last block: NaN-padded (ignored)
        rows = np.concatenate([rows, np.full((r, k * stride - c), np.nan, rows.dtype)], axis=1)
    blocks = rows.reshape(r, k, stride)                          # (R', C) -> (R', k, stride)
    out = blocks[:, :, 0].copy()
    with np.errstate(invalid="ignore"):
        for j in range(1, stride):      # ``stride`` elementwise passes: ~10× faster than fmax.reduceat
            np.fmax(out, blocks[:, :, j], out=out)               # fmax: NaN ignored
    return out
