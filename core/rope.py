"""The RoPE stage's trace: one head's queries and keys rotated by position.

The stage itself (terms, the rotation, code lines, inspector rules) is core/stages/rope.py; this
module takes the chosen head's Q and K from the chapter's MultiHeadAttention (core.tiled.head_qkv:
the book's seeded weights, the prompt as core.inputs draws it) and wraps the tensors as a trace
with one stage, ``rope``, that core.export writes (the (T, d/2, 2) pairs one CSV per position).
"""
from __future__ import annotations

import time

import torch

from core.stages import rope as stage
from core.tiled import HeadTrace, head_qkv, wrap
from core.tiled_config import RopeConfig
from core.tokens import unique_labels

STAGE = "rope"


class RopeTrace(HeadTrace):
    pass


def build_rope(cfg: RopeConfig) -> RopeTrace:
    """Rotate the head's Q and K (positions 0 … T − 1), score with and without RoPE, shift every
    position by ``cfg.shift`` and compare, and compare the two forms up to the permutation."""
    started = time.perf_counter()
    inp, qkv, device, note = head_qkv(cfg)
    labels = unique_labels(inp.tokens)
    with torch.no_grad():
        named = stage.rope_stage(qkv["queries"], qkv["keys"], float(cfg.base), cfg.form, cfg.shift)

    def label(kind, size, name):
        if kind in ("token", "query", "key", "position"):
            return labels[:size]
        if kind == "hd":
            return tuple(f"d{i}" for i in range(size))
        if kind == "pair":
            return tuple(f"pair{i}" for i in range(size))
        if kind == "two":
            return ("x", "y")
        if kind == "one":
            return (name,)
        raise AssertionError(kind)

    stages = {STAGE: wrap(STAGE, named, stage.TERMS, label)}
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return RopeTrace(cfg, inp, device, stages, (time.perf_counter() - started) * 1000.0, (note,) if note else ())
