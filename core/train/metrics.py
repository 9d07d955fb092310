"""Scores that say whether a head has learned its task's pattern, from its attention weights.

All take one snapshot's weights on the probe, (..., T, T) with queries on rows, keys on columns,
and return the mean weight on the pattern's key for each head, (...,).
"""
from __future__ import annotations

import numpy as np


def previous_token_score(attn_weights: np.ndarray) -> np.ndarray:
    """Mean weight from position i to i − 1, over i = 1..T−1."""
    T = attn_weights.shape[-1]
    i = np.arange(1, T)
    return attn_weights[..., i, i - 1].mean(axis=-1)


def induction_score(attn_weights: np.ndarray, n: int) -> np.ndarray:
    """Mean weight from position i to i − n + 1 (the token after i's earlier copy), over the repeat
    i = n..2n−1 of a probe of n tokens repeated twice."""
    i = np.arange(n, 2 * n)
    return attn_weights[..., i, i - n + 1].mean(axis=-1)


def pattern_score(task: str, attn_weights: np.ndarray, seq_len: int) -> np.ndarray:
    """The task's score per head, or NaN for a task without one pattern (next_word)."""
    if task == "previous_token":
        return previous_token_score(attn_weights)
    if task == "induction":
        return induction_score(attn_weights, seq_len)
    return np.full(attn_weights.shape[:-2], np.nan, dtype=np.float32)
