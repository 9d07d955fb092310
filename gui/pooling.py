"""Downsampling that keeps a thin pattern visible: each drawn cell is the largest of its block.

Picking every k-th row and column (a stride) drops a one-cell stripe such as a
previous-token head's sub-diagonal whenever it falls between the picked rows; the mean of a
block dims it to 1/k². The maximum keeps it at full strength. Used by the head gallery's
thumbnails and by the heatmaps of attention weights drawn smaller than one pixel a cell.
"""
from __future__ import annotations

import math

import numpy as np


def max_pooled(weights: np.ndarray, size: int) -> np.ndarray:
    """(…, T, T) -> (…, size, size) by the largest weight in each block (T > size)."""
    edges = np.linspace(0, weights.shape[-1], size + 1).astype(np.intp)[:-1]
    rows = np.maximum.reduceat(weights, edges, axis=-2)
    return np.maximum.reduceat(rows, edges, axis=-1)


def max_pool_stride(img: np.ndarray, stride: int) -> np.ndarray:
    """(R, C) -> (⌈R/stride⌉, ⌈C/stride⌉): the largest finite value of each stride × stride block
    (the same shape and blocks as ``img[::stride, ::stride]``); a block of only NaN (masked)
    cells stays NaN."""
    if stride <= 1:
        return img
    rows, cols = img.shape
    r_edges = np.arange(0, rows, stride)
    c_edges = np.arange(0, cols, stride)
    with np.errstate(invalid="ignore"):
        out = np.fmax.reduceat(np.fmax.reduceat(img, r_edges, axis=0), c_edges, axis=1)   # fmax: NaN ignored
    assert out.shape == (math.ceil(rows / stride), math.ceil(cols / stride))
    return out
