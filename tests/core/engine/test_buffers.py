"""The buffer pool reuses big buffers only when no trace, view or array still refers to them."""
import gc

import numpy as np
import torch

from core import AttentionConfig, build_trace
from core.engine import buffers
from core.engine.buffers import BufferPool

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
    assert t.shape == (4, 4) and buffers.POOL.pooled_bytes == 0 and not buffers.POOL.owns(t)


def test_scores_and_weights_never_share_memory():
    buffers.clear()
    a = build_trace(CFG, only=("multihead",))
    assert ptr(a, "attn_scores") != ptr(a, "attn_weights")
    assert torch.isfinite(a["multihead", "attn_scores"].tensor).all()   # not overwritten by −inf weights' input


def test_the_pool_forgets_free_buffers_of_other_shapes_beyond_its_budget():
    """Regression: evicting a buffer compared tensors with == (list.remove) and raised when an
    earlier pooled buffer had another shape (seen in `main.py bench`: 2048 then 1024 tokens)."""
    mib = 2**20
    pool = BufferPool(min_bytes=mib, max_bytes=3 * mib)
    n = mib // 4                                                 # float32 elements of 1 MiB
    kept = pool.empty((2, n), torch.float32, "cpu")              # in use: must stay pooled
    for shape in [(n,), (3, n), (4, n), (5, n)]:                 # new sizes, each dropped right away
        t = pool.empty(shape, torch.float32, "cpu")
        assert t.shape == shape
        del t
    assert pool.pooled_bytes <= 2 * mib + 5 * mib                # the one in use + the newest
    assert pool.owns(kept)


def test_a_buffer_is_lent_again_only_when_nothing_refers_to_it():
    """Tensors, views and numpy arrays made from a lent buffer all keep it in use."""
    mib = 2**20
    pool = BufferPool(min_bytes=mib, max_bytes=64 * mib)
    shape = (4, mib // 16)                                       # 1 MiB of float32
    for keep in (lambda t: t, lambda t: t[1:], lambda t: t.numpy(), lambda t: t.view(-1).numpy()[5:]):
        first = pool.empty(shape, torch.float32, "cpu")
        held = keep(first)
        ptr = first.data_ptr()
        del first
        gc.collect()
        second = pool.empty(shape, torch.float32, "cpu")
        assert second.data_ptr() != ptr                           # still referred to: not lent again
        del held
        gc.collect()
        third = pool.empty(shape, torch.float32, "cpu")
        assert third.data_ptr() == ptr                            # free again: reused
        del second, third
        pool.clear()


def test_no_private_torch_api_in_the_engine():
    from pathlib import Path
    engine = Path(buffers.__file__).parent
    for path in engine.glob("*.py"):
        assert "torch._C" not in path.read_text(), path.name
