"""Scores that say whether a head has learned a pattern, from its attention weights on the probe.

All take one snapshot's weights on the probe, (..., T, T) with queries on rows, keys on columns,
and return the mean weight on the pattern's key for each head, (...,):

- previous-token score: the mean weight from position i on position i − 1;
- induction score: the mean weight from position i on the token *after* the previous occurrence
  of i's token (Olsson et al., 2022). It is defined by the tokens, not by positions: on the
  induction probe (a prefix, n tokens, the same n tokens again, the first T − n tokens distinct)
  the queries are the repeat's positions i and the key is i − n + 1.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

INDUCTION_HEAD = 0.5     # an induction score from which a head is called an induction head


def previous_token_score(attn_weights: np.ndarray) -> np.ndarray:
    """Mean weight from position i to i − 1, over i = 1..T−1."""
    T = attn_weights.shape[-1]
    i = np.arange(1, T)
    return attn_weights[..., i, i - 1].mean(axis=-1)


def induction_pairs(tokens: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(queries, keys): every position i whose token occurred earlier, and the position after that
    token's latest earlier occurrence (what an induction head attends to)."""
    last: dict = {}
    queries, keys = [], []
    for i, token in enumerate(tokens):
        if token in last:
            queries.append(i)
            keys.append(last[token] + 1)
        last[token] = i
    return np.asarray(queries, dtype=np.int64), np.asarray(keys, dtype=np.int64)


def repeat_start(tokens: Sequence) -> int | None:
    """The first position whose token occurred earlier (the induction probe's repeat), or None."""
    queries, _ = induction_pairs(tokens)
    return int(queries[0]) if len(queries) else None


def induction_score(attn_weights: np.ndarray, tokens: Sequence) -> np.ndarray:
    """Mean weight from each repeated token on the token after its previous occurrence; NaN per
    head if no token of ``tokens`` repeats."""
    queries, keys = induction_pairs(tokens)
    if not len(queries):
        return np.full(attn_weights.shape[:-2], np.nan, dtype=np.float32)
    return attn_weights[..., queries, keys].mean(axis=-1)


def pattern_score(task: str, attn_weights: np.ndarray, tokens: Sequence) -> np.ndarray:
    """The task's score per head, or NaN for a task without one pattern (next_word)."""
    if task == "previous_token":
        return previous_token_score(attn_weights)
    if task == "induction":
        return induction_score(attn_weights, tokens)
    return np.full(attn_weights.shape[:-2], np.nan, dtype=np.float32)


def best_heads(attn_weights: np.ndarray, tokens: Sequence) -> dict[str, tuple[int, int, float]]:
    """For one snapshot's (L, h, T, T) weights: the (layer, head, score) with the highest
    previous-token score and the one with the highest induction score (if the probe repeats)."""
    out = {}
    for name, scores in (("previous-token", previous_token_score(attn_weights)),
                         ("induction", induction_score(attn_weights, tokens))):
        if not np.all(np.isnan(scores)):
            layer, head = np.unravel_index(int(np.nanargmax(scores)), scores.shape)
            out[name] = (int(layer), int(head), float(scores[layer, head]))
    return out


def best_heads_text(attn_weights: np.ndarray, tokens: Sequence, task: str) -> str:
    """One line naming heads, layers and heads counted from 0 as everywhere in the app.

    previous_token: the best previous-token head. induction: the circuit, the best induction head
    and the best previous-token head in a layer below it ("circuit: previous-token head layer 0
    head 1 (0.94) -> induction head layer 1 head 0 (0.87)"); a layer-1 head is named as the
    induction head only when it is one: a best induction score below 0.5 says "no induction head
    yet", and a best induction head in layer 0 is said to find the copy by position only (with
    nothing before it, it cannot look for the token after the current one's earlier copy)."""
    best = best_heads(attn_weights, tokens)
    if task != "induction" or "induction" not in best:
        layer, head, score = best["previous-token"]
        return f"best previous-token head: layer {layer} head {head} ({score:.2f})"
    layer, head, score = best["induction"]
    if layer == 0:
        return (f"best induction score: layer 0 head {head} ({score:.2f}), in layer 0, so by position only: "
                "no head below it can have marked the previous tokens")
    if score < INDUCTION_HEAD:
        return f"no induction head yet (best induction score: layer {layer} head {head}, {score:.2f})"
    below = previous_token_score(attn_weights[:layer])                    # (layer, h)
    p_layer, p_head = np.unravel_index(int(np.argmax(below)), below.shape)
    return (f"circuit: previous-token head layer {p_layer} head {p_head} ({float(below[p_layer, p_head]):.2f}) "
            f"-> induction head layer {layer} head {head} ({score:.2f})")


def expected_cells(task: str, tokens: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(queries, keys): the cells a head that learned the task's pattern puts its weight on, for the
    Train view's guide: induction: each repeated token -> the token after its previous occurrence;
    previous token: i -> i − 1; next word: each verb's preceding word -> its subject (the shipped
    agreement text, core.train.corpus), none on other texts."""
    if task == "induction":
        return induction_pairs(tokens)
    if task == "previous_token":
        i = np.arange(1, len(tokens), dtype=np.int64)
        return i, i - 1
    from core.train.corpus import agreement_pairs
    return agreement_pairs(tokens)
