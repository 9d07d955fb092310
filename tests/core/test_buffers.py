"""The buffer pool reuses big buffers only when no trace, view or array still refers to them."""
import gc

import numpy as np
import torch

from core import AttentionConfig, build_trace, buffers

CFG = AttentionConfig(embeddings="random", text=" ".join(f"w{i}" for i in range(512)), d_in=8, d_out=12,
                      num_heads=12, device="cpu")  # 12 × 512 × 512 floats = 12 MB per T×T tensor


def ptr(trace, name):
    return trace["multihead", name].tensor.data_ptr()


def test_a_live_trace_is_never_overwritten():
    buffers.clear()
    a = build_trace(CFG, only=("multihead",))
    kept = {n: a["multihead", n].tensor.clone() for n in ("attn_scores", "attn_weights")}
    view = a["multihead", "attn_weights"].numpy()[0]          # a numpy view the GUI might hold
    b = build_trace(CFG.replace(seed=7), only=("multihead",))
    c = build_trace(CFG.replace(seed=8), only=("multihead",))
    for n, v in kept.items():
        assert torch.equal(a["multihead", n].tensor, v)
    assert ptr(b, "attn_scores") != ptr(a, "attn_scores") != ptr(c, "attn_scores")
    assert np.array_equal(view, kept["attn_weights"][0].numpy())


def test_memory_of_a_dropped_trace_is_reused_with_correct_values():
    buffers.clear()
    a = build_trace(CFG, only=("multihead",))
    old = {ptr(a, n) for n in ("attn_scores", "attn_weights")}
    del a
    gc.collect()
    b = build_trace(CFG.replace(seed=5), only=("multihead",))
    assert {ptr(b, n) for n in ("attn_scores", "attn_weights")} == old   # reused, no fresh pages
    fresh = build_trace(CFG.replace(seed=5), only=("multihead",))       # its own buffers (b is alive)
    for n in ("attn_scores", "attn_weights", "context_vecs"):
        assert torch.equal(b["multihead", n].tensor, fresh["multihead", n].tensor)
    ref = torch.softmax(fresh["multihead", "masked_scores"].tensor / 1.0, dim=-1)
    assert torch.allclose(b["multihead", "attn_weights"].tensor, ref, atol=1e-6)


def test_small_tensors_bypass_the_pool():
    buffers.clear()
    t = buffers.empty((4, 4), torch.float32, "cpu")
    assert t.shape == (4, 4) and not buffers._pool


def test_scores_and_weights_never_share_memory():
    buffers.clear()
    a = build_trace(CFG, only=("multihead",))
    assert ptr(a, "attn_scores") != ptr(a, "attn_weights")
    assert torch.isfinite(a["multihead", "attn_scores"].tensor).all()   # not overwritten by −inf weights' input


def test_the_pool_forgets_free_buffers_of_other_shapes_beyond_its_budget(monkeypatch):
    """Regression: evicting a buffer compared tensors with == (list.remove) and raised when an
    earlier pooled buffer had another shape (seen in `main.py bench`: 2048 then 1024 tokens)."""
    buffers.clear()
    monkeypatch.setattr(buffers, "MAX_POOL_BYTES", 3 * buffers.MIN_BYTES)
    n = buffers.MIN_BYTES // 4                                   # float32 elements of MIN_BYTES
    kept = buffers.empty((2, n), torch.float32, "cpu")           # in use: must stay pooled
    for shape in [(n,), (3, n), (4, n), (5, n)]:                 # new sizes, each dropped right away
        t = buffers.empty(shape, torch.float32, "cpu")
        assert t.shape == shape
        del t
    total = sum(t.numel() * t.element_size() for t in buffers._pool)
    assert total <= 2 * buffers.MIN_BYTES + 5 * buffers.MIN_BYTES   # the one in use + the newest
    assert any(t.data_ptr() == kept.data_ptr() for t in buffers._pool)
    buffers.clear()
