"""What a stage's forward is written against: the chapter's operations, and a record of each tensor.

Each stage's forward is written once, as the chapter writes it, calling ``ops`` for the steps
another ops does its own way (projections, scores, masked softmax, A·V) and recording each
tensor where it is made, ``ops.record(name, tensor)`` (as TransformerLens's hook points do).
``Ops`` is the chapter's plain torch; core.engine.ops has the engine's (chosen in core.trace's
``_forward``), core.train.model the Train model's (nn.Linear layers, nn.Dropout).
"""
from __future__ import annotations

from typing import Callable

import torch


def project(x: torch.Tensor, proj) -> torch.Tensor:
    """nn.Linear in the x @ W convention: (..., T, d_in) -> (..., T, d_out); ``proj``: a core.weights.Projection."""
    return x @ proj.W if proj.b is None else x @ proj.W + proj.b


class Ops:
    """The chapter's lines, in plain torch; what a forward records is kept in ``named``."""

    def __init__(self) -> None:
        self.named: dict[str, torch.Tensor] = {}

    def record(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        self.named[name] = tensor                    # the intermediate ``name``
        return tensor

    def project(self, x: torch.Tensor, proj, role: str | None = None) -> torch.Tensor:
        """``project``; ``role`` ("query", "key", "value") lets an ops reuse another stage's Q, K, V."""
        return project(x, proj)

    def scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Q Kᵀ: (..., T, d) × (..., T_k, d) -> (..., T, T_k)."""
        return queries @ keys.transpose(-2, -1)

    def masked(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """−∞ where the mask is 0: a new tensor (not the book's masked_fill_), the scores stay visible."""
        return scores.masked_fill(mask == 0, -torch.inf)

    def softmax(self, masked_scores: torch.Tensor, d_k: int, scores: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """softmax(masked_scores / √d_k); an ops may start from ``scores`` and ``mask`` instead."""
        return torch.softmax(masked_scores / d_k ** 0.5, dim=-1)

    def dropout(self, weights: torch.Tensor) -> torch.Tensor:
        """nn.Dropout on the attention weights: none here (eval mode)."""
        return weights

    def mix(self, weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """The context vectors A V: (..., T, T_k) × (..., T_k, d) -> (..., T, d)."""
        return weights @ values

    def later(self, rest: Callable[[], None]) -> None:
        """The rest of a forward (what it records after the attention weights): here run now; an
        ops may defer it until the weights have been drawn."""
        rest()
