"""What a head does, in four numbers: the gallery's scores under each thumbnail.

``head_scores(weights, cls, sep)`` takes attention weights (…, T, T) (rows are queries and sum
to 1) and two (T,) bool masks marking the [CLS] and [SEP] pieces, and returns, per head, the
averages over the *word* rows (queries that are neither [CLS] nor [SEP]):

- ``previous``: the weight a word puts on the piece just before it, over the words whose
  previous piece is a word too (the first word's previous piece is [CLS]: that is ``cls``);
- ``cls``: the weight a word puts on [CLS];
- ``sep``: the weight a word puts on [SEP];
- ``entropy``: −Σ a·log₂ a of a word's row, in bits (0: all on one key; log₂ T: spread evenly).

Pure torch, no model: the tests check it against hand-built patterns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NAMES = ("previous", "cls", "sep", "entropy")


@dataclass(frozen=True)
class HeadScores:
    """Each field: a tensor of the weights' leading shape (e.g. (layers, heads))."""

    previous: torch.Tensor
    cls: torch.Tensor
    sep: torch.Tensor
    entropy: torch.Tensor
    max_entropy: float           # log₂ T: the entropy of a row spread evenly over all T keys

    def get(self, name: str) -> torch.Tensor:
        return getattr(self, name)


def head_scores(weights: torch.Tensor, cls: torch.Tensor, sep: torch.Tensor) -> HeadScores:
    """Scores of every head in ``weights`` (…, T, T); ``cls``/``sep``: (T,) bool."""
    cls, sep = cls.to(torch.bool), sep.to(torch.bool)
    num = weights.shape[-1]
    if cls.shape != (num,) or sep.shape != (num,):
        raise ValueError(f"cls and sep must be ({num},) masks, got {tuple(cls.shape)} and {tuple(sep.shape)}")
    w = weights.to(torch.float64)
    words = ~(cls | sep)
    rows = torch.nonzero(words).flatten()
    if rows.numel() == 0:
        nan = torch.full(w.shape[:-2], float("nan"), dtype=torch.float64)
        return HeadScores(nan, nan, nan, nan, math.log2(max(num, 1)))
    word_rows = w[..., rows, :]                                                # (…, R, T)
    on_cls = word_rows[..., cls].sum(dim=-1).mean(dim=-1)                      # (…, R) -> (…)
    on_sep = word_rows[..., sep].sum(dim=-1).mean(dim=-1)
    logs = torch.where(word_rows > 0, torch.log2(word_rows.clamp_min(1e-300)), torch.zeros_like(word_rows))
    entropy = -(word_rows * logs).sum(dim=-1).mean(dim=-1)                     # 0·log 0 = 0
    prev_rows = torch.tensor([int(i) for i in rows if i > 0 and words[i - 1]], dtype=torch.long)
    if prev_rows.numel():
        previous = w[..., prev_rows, prev_rows - 1].mean(dim=-1)               # (…, R') -> (…)
    else:
        previous = torch.full(w.shape[:-2], float("nan"), dtype=torch.float64)
    return HeadScores(previous, on_cls, on_sep, entropy, math.log2(num))


def special_masks(pieces: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(cls, sep) bool masks of a WordPiece text's pieces."""
    return (torch.tensor([p == "[CLS]" for p in pieces], dtype=torch.bool),
            torch.tensor([p == "[SEP]" for p in pieces], dtype=torch.bool))
