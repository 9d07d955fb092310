"""A trace made by the engine leaves no reference cycles: dropping it frees its pooled buffers at
once. (A deferred tensor's closure keeps the engine's ops; when the ops kept its record of the
forward too, each trace was a cycle: its 50 MB of scores and weights at 1024 tokens went back to
the pool only at the next garbage collection, and the next trace paid ~150 ms of page faults.)"""
from __future__ import annotations

import gc

import pytest

from core.config import AttentionConfig
from core.trace import build_trace, build_trace_in_steps

CFG = AttentionConfig(embeddings="random", text=" ".join(f"w{i}" for i in range(16)), d_in=16, d_out=16,
                      num_heads=4, seed=5)


@pytest.mark.parametrize("how", ["first part only", "every part", "build_trace"])
def test_a_dropped_trace_is_freed_without_the_garbage_collector(how):
    gc.collect()
    gc.disable()
    try:
        for seed in (5, 6):
            cfg = AttentionConfig(**{**CFG.to_dict(), "seed": seed})
            if how == "first part only":
                kept = [next(iter(build_trace_in_steps(cfg, first=("multihead",))))]
            elif how == "every part":
                kept = list(build_trace_in_steps(cfg, first=("multihead",)))
            else:
                kept = [build_trace(cfg)]
            assert kept[-1]["multihead", "attn_weights"].tensor.shape[-3:] == (4, 16, 16)
            del kept
        gc.set_debug(gc.DEBUG_SAVEALL)
        found = gc.collect()
        kinds = sorted({type(o).__name__ for o in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert found == 0, f"{found} objects in reference cycles: {kinds}"
