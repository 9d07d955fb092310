"""Each engine path gives its stage's numbers: the trace with the engine vs with the plain forwards.

Tolerances: the engine sums the same products in another order (row-blocked A·V, chunked
softmax, scale-then-mask), so float32 results may differ by a few ulp of values of order 1:
atol 1e-6 (float32) / 1e-12 (float64). Exact where the engine does the same arithmetic.
"""
import pytest
import torch

from core import AttentionConfig, build_trace
from core.engine import kernels
from core.engine import ops as engine
from core.stages import causal, multihead
from core.weights import draw_fused, draw_qkv, draw_wrapper_heads
from tests.core.references import VARIED_CONFIGS, VARIED_IDS

LONG = " ".join(f"w{i}" for i in range(520))      # 520 tokens × 8 heads: the chunked softmax and blocked A·V
CONFIGS = [
    AttentionConfig(),
    AttentionConfig(init="linear", seed=789, dropout=0.5, dropout_seed=123),
    AttentionConfig(embeddings="random", text="The cat sat on the mat , and the cat slept .", d_in=5,
                    d_out=6, num_heads=3, qkv_bias=True, batch=2, dropout=0.25, dropout_seed=9),
    AttentionConfig(embeddings="random", text="a b c d e f g h", d_in=4, d_out=8, num_heads=4,
                    causal=False, dtype="float64"),
    AttentionConfig(embeddings="random", text=LONG, d_in=8, d_out=16, num_heads=8),
    AttentionConfig(embeddings="random", text=LONG, d_in=8, d_out=24, num_heads=8, causal=False),  # √3: divide path
]
IDS = ["book", "v2-dropout", "bias-batch", "noncausal-f64", "long", "long-noncausal"]


def atol(cfg):
    return 1e-12 if cfg.dtype == "float64" else 1e-6


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_the_engine_trace_equals_the_plain_forwards(cfg):
    tuned = build_trace(cfg)
    plain = build_trace(cfg, use_engine=False)
    assert [it.key for it in tuned] == [it.key for it in plain]       # same names, same order
    for item in plain:
        got = tuned[item.key].tensor
        assert got.shape == item.tensor.shape, item.key
        assert torch.allclose(got, item.tensor, atol=atol(cfg), rtol=0, equal_nan=True), item.key


def _batch(cfg):
    trace = build_trace(cfg, only=("simplified",))
    x = trace["simplified", "inputs"].tensor
    return x.unsqueeze(0).expand(cfg.batch, *x.shape)                 # (T, d_in) -> (b, T, d_in)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_multihead_with_the_engine_ops_equals_it_with_the_chapter_ops(cfg):
    xb = _batch(cfg).to(torch.float64 if cfg.dtype == "float64" else torch.float32)
    qkv, out_proj = draw_fused(cfg.init, cfg.seed, cfg.d_in, cfg.d_out, cfg.qkv_bias)
    dtype = xb.dtype
    qkv = {r: p.to("cpu", dtype) for r, p in qkv.items()}
    out_proj = out_proj.to("cpu", dtype)
    mask = causal.causal_mask(xb.shape[1], cfg.causal, dtype=dtype)
    want = multihead.fused(xb, qkv, out_proj, cfg.num_heads, mask)
    ops = engine.EngineOps(xb[0], None, cfg.causal, kernels.additive_mask(mask))
    got = multihead.fused(xb, qkv, out_proj, cfg.num_heads, mask, ops)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        other = got[name].compute() if hasattr(got[name], "compute") else got[name]
        assert torch.allclose(other, value, atol=atol(cfg), rtol=0, equal_nan=True), name


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=IDS[:3])
def test_causal_with_shared_projections_equals_causal_forward(cfg):
    xb = _batch(cfg)
    qkv = draw_qkv(cfg.init, cfg.seed, cfg.d_in, cfg.d_out, cfg.qkv_bias)
    mask = causal.causal_mask(xb.shape[1], cfg.causal)
    keep = torch.ones(cfg.batch, xb.shape[1], xb.shape[1])
    want = causal.forward(xb, qkv, mask, keep, cfg.dropout)
    x = xb[0]
    queries, keys, values = (x @ qkv[r].W + (0 if qkv[r].b is None else qkv[r].b) for r in ("query", "key", "value"))
    shared = {"queries": queries, "keys": keys, "values": values, "attn_scores": queries @ keys.T}
    got = causal.forward(xb, qkv, mask, keep, cfg.dropout, engine.SharedOps(x, shared, reuse_scores=True))
    assert sorted(got) == sorted(want)
    assert got["attn_scores"]._base is shared["attn_scores"]        # the trainable scores, viewed, not recomputed
    for name, value in want.items():
        assert torch.allclose(got[name], value, atol=1e-6, rtol=0, equal_nan=True), name


def test_engine_wrapper_is_derived_and_equals_the_wrapper():
    cfg = CONFIGS[2]
    xb = _batch(cfg)
    heads = draw_wrapper_heads(cfg.init, cfg.seed, cfg.d_in, cfg.head_dim, cfg.num_heads, cfg.qkv_bias)
    mask = causal.causal_mask(xb.shape[1])
    want = multihead.wrapper(xb, list(heads), mask)
    draws = []
    got = engine.wrapper(xb, lambda: draws.append(1) or (list(heads), multihead.stack_heads(list(heads))), mask,
                       cfg.num_heads, cfg.head_dim, cfg.qkv_bias)
    assert draws == [] and list(got) == list(want)                  # nothing drawn until looked at
    for name, value in want.items():
        other = got[name].compute() if hasattr(got[name], "compute") else got[name]
        assert torch.equal(other, value), name                      # the same code runs: exactly equal
    assert draws == [1]                                             # drawn once for all of them


@pytest.mark.parametrize("cfg", VARIED_CONFIGS, ids=VARIED_IDS)
def test_stages_sharing_the_trainable_projections_equal_stages_computed_alone(cfg):
    """A full trace reuses the trainable stage's Q, K, V (and scores) in the causal and multi-head
    stages; each stage computed on its own (no sharing) must give the same numbers."""
    full = build_trace(cfg)
    for stage in ("causal", "multihead"):
        alone = build_trace(cfg, only=(stage,))
        for item in alone:
            other = full[item.key].tensor
            assert other.shape == item.tensor.shape, item.key
            assert torch.allclose(other, item.tensor, atol=1e-6, rtol=0, equal_nan=True), item.key
