"""Why 1/√d_k: how peaked softmax gets as d_k grows, with and without the scaling.

Dot products of d_k-dimensional vectors with independent entries have a variance that
grows with d_k, so unscaled scores spread apart and softmax collapses onto one key (its
gradients vanish). Dividing by √d_k keeps the variance, and the weights, steady.
``peakedness_curve`` measures it: for each d_k, the mean over query rows of the largest
attention weight (1.0 = all weight on one key; 1/T = uniform) and the mean row entropy.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.config import AttentionConfig
from core.inputs import Inputs, resolve_inputs
from core.stages.trainable import peakedness
from core.weights import draw_qkv

DEFAULT_DKS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclass(frozen=True)
class Curve:
    label: str
    d_ks: tuple[int, ...]
    max_weight: tuple[float, ...]   # mean over rows of the row's largest weight
    entropy: tuple[float, ...]      # mean row entropy, in nats


def peakedness_curve(config: AttentionConfig, inputs: Inputs | None = None,
                     d_ks: tuple[int, ...] = DEFAULT_DKS, random_tokens: int | None = None) -> list[Curve]:
    """Four curves: current inputs and random vectors, each with and without 1/√d_k."""
    inp = inputs if inputs is not None else resolve_inputs(config)
    x = torch.tensor(inp.array, dtype=torch.float64)                  # (T, d_in)
    T = random_tokens or max(len(inp.tokens), 2)
    gen = torch.Generator().manual_seed(config.seed)
    rows = {("inputs", True): [], ("inputs", False): [], ("random", True): [], ("random", False): []}
    for d_k in d_ks:
        # current inputs, projected by weights drawn as the config draws them, width d_k
        qkv = draw_qkv(config.init, config.seed, config.d_in, d_k, False)
        q = x @ qkv["query"].W.double()
        k = x @ qkv["key"].W.double()
        # random queries and keys with unit-variance entries: the textbook argument
        rq = torch.randn(T, d_k, generator=gen, dtype=torch.float64)
        rk = torch.randn(T, d_k, generator=gen, dtype=torch.float64)
        for scaled in (True, False):
            rows["inputs", scaled].append(peakedness(q, k, scaled))
            rows["random", scaled].append(peakedness(rq, rk, scaled))
    curves = []
    for (src, scaled), vals in rows.items():
        label = f"{'your inputs' if src == 'inputs' else 'random vectors'}, {'÷ √d_k' if scaled else 'unscaled'}"
        curves.append(Curve(label, tuple(d_ks), tuple(v[0] for v in vals), tuple(v[1] for v in vals)))
    return curves
