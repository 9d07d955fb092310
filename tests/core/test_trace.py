"""core.trace: every trace's invariants (weights rows sum to 1, masked weights exactly 0, dropout,
no aliasing, the global RNG untouched, edited weights), over several configs."""
import pytest
import torch

from core import AttentionConfig, build_trace
from tests.core.references import VARIED_CONFIGS as CONFIGS

WEIGHTS = [("simplified", "attn_weights"), ("trainable", "attn_weights"), ("causal", "attn_weights"),
           ("causal", "renormalized_weights"), ("multihead", "attn_weights")]


@pytest.mark.parametrize("key", WEIGHTS, ids=[f"{s}.{n}" for s, n in WEIGHTS])
def test_every_attention_weight_row_sums_to_one(varied_trace, key):
    trace = varied_trace
    w = trace[key].tensor.double()
    assert torch.allclose(w.sum(dim=-1), torch.ones(w.shape[:-1], dtype=torch.float64), atol=1e-6)
    assert (w >= 0).all()


def test_masked_weights_are_exactly_zero(varied_trace):
    trace = varied_trace
    mask = trace["causal", "mask"].tensor
    future = mask == 0
    if not trace.config.causal:
        assert not future.any()
        return
    assert future.sum() == mask.shape[0] * (mask.shape[0] - 1) // 2
    for key in [("causal", "attn_weights"), ("causal", "renormalized_weights"), ("causal", "masked_simple"),
                ("causal", "dropped_weights"), ("multihead", "attn_weights")]:
        w = trace[key].tensor
        assert (w.expand(*w.shape[:-2], *mask.shape)[..., future] == 0).all(), key
    ms = trace["causal", "masked_scores"].tensor
    assert torch.isneginf(ms[..., future]).all() and torch.isfinite(ms[..., ~future]).all()


def test_dropout_keeps_values_scaled(varied_trace):
    trace = varied_trace
    p = trace.config.dropout
    w = trace["causal", "attn_weights"].tensor
    keep = trace["causal", "dropout_mask"].tensor
    dropped = trace["causal", "dropped_weights"].tensor
    assert set(keep.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(dropped[keep == 0], torch.zeros_like(dropped[keep == 0]))
    assert torch.allclose(dropped[keep == 1], w[keep == 1] / (1 - p), atol=1e-7)
    if p == 0:
        assert torch.equal(dropped, w)
    else:
        # Same keep mask as torch's own nn.Dropout after the same seed.
        torch.manual_seed(trace.config.dropout_seed)
        ref = torch.nn.Dropout(p)(torch.ones(keep.shape))
        assert torch.equal(keep.cpu().float() / (1 - p), ref)


def test_trace_leaves_global_rng_untouched():
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    build_trace(AttentionConfig(dropout=0.5))
    assert torch.equal(torch.rand(3), expected)


def test_no_intermediate_aliases_another(varied_trace):
    """Each intermediate keeps its own value: distinct tensors, none a view written by another."""
    trace = varied_trace
    items = [it for it in trace if it.tensor.numel() > 1]
    a = trace["causal", "attn_scores"].tensor
    ms = trace["causal", "masked_scores"].tensor
    if trace.config.causal and a.shape[-1] > 1:
        assert torch.isfinite(a).all() and torch.isneginf(ms).any()
    # the causal stage's W_query/W_key/W_value (and biases) are the trainable stage's very
    # weights (one draw, as the book reuses sa_v2's): the one sharing by design
    tr = trace.stages["trainable"]
    own = [it for it in items if not (it.stage == "causal" and it.name in tr and it.tensor is tr[it.name].tensor
                                      and it.name.startswith(("W_", "b_")))]
    assert len({id(it.tensor) for it in own}) == len(own)
    before = {it.key: it.tensor.clone() for it in items}
    build_trace(trace.config)  # a second trace must not write into the first
    for it in items:
        assert torch.equal(it.tensor, before[it.key]), it.key


def test_edited_weights_reach_the_causal_stage_but_not_the_multihead_one():
    cfg = CONFIGS[0]
    edited = {"W_query": (build_trace(cfg)["trainable", "W_query"].numpy() * 2).tolist()}
    full = build_trace(cfg, weights_override=edited)
    assert torch.allclose(full["causal", "attn_scores"].tensor,
                          build_trace(cfg, only=("causal",), weights_override=edited)["causal", "attn_scores"].tensor)
    plain = build_trace(cfg, only=("multihead",))
    # not bit for bit: a full trace may take the multi-head projections through the shared path
    # (see the test above), whose kernels may round differently on another CPU; the edit (×2) is far bigger
    assert torch.allclose(full["multihead", "queries"].tensor, plain["multihead", "queries"].tensor, atol=1e-6, rtol=0)
    assert not torch.allclose(full["causal", "attn_scores"].tensor, build_trace(cfg)["causal", "attn_scores"].tensor)


@pytest.mark.parametrize("first", ["simplified", "trainable", "causal", "multihead"])
@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=lambda c: f"T{len(c.text.split())}-h{c.num_heads}-b{c.batch}")
def test_visible_stage_first_then_the_same_full_trace(cfg, first):
    """The GUI's order (the stage on screen, with what it reads, then the rest) ends in build_trace's
    numbers, bit for bit: the same forwards on the same inputs, weights and shared Q/K/V."""
    from core.trace import NEEDS, build_trace_in_steps
    parts = list(build_trace_in_steps(cfg, first=first))
    assert len(parts) == 2
    assert set(parts[0].stages) == {first, *NEEDS[first]}
    full = build_trace(cfg)
    assert list(parts[1].stages) == list(full.stages)          # every stage, in the chapter's order
    assert [i.key for i in parts[1]] == [i.key for i in full]
    for item in full:
        assert torch.equal(item.tensor, parts[1][item.key].tensor), item.key
    for item in parts[0]:                          # the part drawn first is the final trace's, not a copy
        assert parts[1][item.key] is item


DEFERRED = ("values", "context_heads", "context_concat", "context_vecs")


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=lambda c: f"T{len(c.text.split())}-h{c.num_heads}-b{c.batch}")
def test_multihead_on_screen_defers_v_and_the_context_vectors(cfg):
    """With MultiHeadAttention on screen, its attention weights are ready when the partial trace
    is delivered, V and the context vectors not yet (two of the four projections); they are
    computed before the rest of the trace, without anyone looking, and equal build_trace's."""
    from core.trace import build_trace_in_steps
    steps = build_trace_in_steps(cfg, first=("multihead",))
    partial = next(steps)
    for name in ("queries", "keys", "attn_scores", "attn_weights"):
        assert partial["multihead", name].is_ready, name
    for name in DEFERRED:
        assert not partial["multihead", name].is_ready, name
    full = next(steps)
    assert list(steps) == []
    reference = build_trace(cfg)
    for name in DEFERRED:
        assert full["multihead", name] is partial["multihead", name] and full["multihead", name].is_ready
        assert torch.equal(full["multihead", name].tensor, reference["multihead", name].tensor), name


def test_a_deferred_tensor_read_early_is_computed_once():
    """The window may read a deferred tensor (another step of the same stage) before the worker
    computes it: the worker then keeps that tensor, and the trainable stage reuses its V."""
    from core.trace import build_trace_in_steps
    cfg = CONFIGS[1]
    steps = build_trace_in_steps(cfg, first=("multihead",))
    partial = next(steps)
    early = partial["multihead", "context_vecs"].tensor
    full = next(steps)
    assert full["multihead", "context_vecs"].tensor is early
    reference = build_trace(cfg)
    assert torch.equal(early, reference["multihead", "context_vecs"].tensor)
    assert torch.equal(full["trainable", "values"].tensor, reference["trainable", "values"].tensor)


def test_an_intermediate_holds_its_tensor_and_nothing_else():
    """An intermediate is immutable: its fields are the tensor (or the Lazy that computes it
    once) and its labels; reading it (tensor, numpy, notes) keeps nothing on it. What a view
    makes of it lives in the GUI's display cache."""
    import dataclasses

    from core.engine.lazy import Lazy
    from core.numerics import item_notes
    from core.trace import Intermediate
    assert [f.name for f in dataclasses.fields(Intermediate)] == ["stage", "name", "source", "term", "axes", "labels"]
    trace = build_trace(CONFIGS[1])
    derived = trace["multihead", "masked_scores"]            # the engine's Lazy: computed on first look
    assert isinstance(derived.source, Lazy) and not derived.is_ready
    for item in (trace["causal", "attn_weights"], derived):
        before = dict(vars(item))
        arr = item.numpy()
        assert not arr.flags.writeable and item_notes(item) == []
        assert vars(item).keys() == before.keys() and all(vars(item)[k] is v for k, v in before.items())
        torch.testing.assert_close(torch.from_numpy(arr.copy()), item.tensor.cpu(), rtol=0, atol=0)
    assert derived.is_ready and derived.tensor is derived.tensor            # the Lazy keeps what it computed
    mask = trace["causal", "mask"].tensor == 0
    expected = trace["multihead", "attn_scores"].tensor.masked_fill(mask, -torch.inf)
    assert torch.equal(derived.tensor, expected)                           # the chapter's masked_fill
