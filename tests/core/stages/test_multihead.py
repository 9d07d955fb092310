"""Section 3.6 (core/stages/multihead.py): the wrapper and MultiHeadAttention, against the book."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core import build_trace
from tests.core.book_reference import BOOK_INPUTS, MultiHeadAttention, MultiHeadAttentionWrapper, same_4dp
from tests.core.references import IDS, MHA_IDS, MHA_SIZES, SIZES, TOL, batched, make_config, max_diff


def test_multi_head_wrapper(book_traces):
    t = book_traces["wrapper"]
    batch = torch.stack((BOOK_INPUTS, BOOK_INPUTS), dim=0)
    torch.manual_seed(123)
    mha = MultiHeadAttentionWrapper(3, 2, batch.shape[1], 0.0, num_heads=2)
    got = t["multihead", "wrapper_context_vecs"].tensor
    same_4dp(got, mha(batch))
    same_4dp(got[0, 0], [-0.4519, 0.2216, 0.4772, 0.1063])
    same_4dp(got[0, 5], [-0.5299, -0.1081, 0.5077, 0.3493])
    for h, head in enumerate(mha.heads):
        same_4dp(t["multihead", "wrapper_W_query"].tensor[h], head.W_query.weight.T)


def test_multi_head_attention_fused(book_traces):
    t = book_traces["fused"]
    batch = torch.stack((BOOK_INPUTS, BOOK_INPUTS), dim=0)
    torch.manual_seed(123)
    mha = MultiHeadAttention(3, 2, batch.shape[1], 0.0, num_heads=2)
    expected = mha(batch)
    mh = t.stages["multihead"]
    same_4dp(mh["context_vecs"].tensor, expected)
    same_4dp(mh["attn_weights"].tensor, mha.last_attn_weights)
    same_4dp(mh["W_out"].tensor, mha.out_proj.weight.T)
    same_4dp(mh["b_out"].tensor, mha.out_proj.bias)
    same_4dp(mh["context_vecs"].tensor[0, 0], [0.3190, 0.4858])
    same_4dp(mh["context_vecs"].tensor[0, 5], [0.2575, 0.4028])


@pytest.mark.parametrize("size", MHA_SIZES, ids=MHA_IDS)
def test_fused_multihead_equals_nn_multiheadattention(size, dtype):
    cfg = make_config(size, dtype)
    t = build_trace(cfg)
    mh = t.stages["multihead"]
    torch_dtype = getattr(torch, dtype)
    ref = nn.MultiheadAttention(cfg.d_out, cfg.num_heads, bias=True, batch_first=True, dtype=torch_dtype)
    ref.eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mh[f"W_{r}"].tensor.T for r in ("query", "key", "value")]))
        if cfg.qkv_bias:
            ref.in_proj_bias.copy_(torch.cat([mh[f"b_{r}"].tensor for r in ("query", "key", "value")]))
        else:
            ref.in_proj_bias.zero_()
        ref.out_proj.weight.copy_(mh["W_out"].tensor.T)
        ref.out_proj.bias.copy_(mh["b_out"].tensor)
    x = t["simplified", "inputs"].tensor
    xb = x.expand(cfg.batch, *x.shape)
    T = x.shape[0]
    attn_mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if cfg.causal else None
    with torch.no_grad():
        out, weights = ref(xb, xb, xb, attn_mask=attn_mask, need_weights=True, average_attn_weights=False)
    assert max_diff(batched(mh["context_vecs"].tensor, cfg.batch), out) <= TOL[dtype]
    assert max_diff(batched(mh["attn_weights"].tensor, cfg.batch), weights) <= TOL[dtype]


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_wrapper_heads_equal_sdpa_per_head(size, dtype):
    cfg = make_config(size, dtype)
    t = build_trace(cfg)
    mh = t.stages["multihead"]
    x = t["simplified", "inputs"].tensor
    heads, weights = [], []
    for h in range(cfg.num_heads):
        proj = {}
        for role in ("query", "key", "value"):
            out = x @ mh[f"wrapper_W_{role}"].tensor[h]
            if cfg.qkv_bias:
                out = out + mh[f"wrapper_b_{role}"].tensor[h]
            proj[role] = out
        heads.append(F.scaled_dot_product_attention(proj["query"][None], proj["key"][None], proj["value"][None],
                                                    is_causal=cfg.causal)[0])
        # softmax(...) @ I is the weights themselves: SDPA's per-head attention weights
        eye = torch.eye(x.shape[0], dtype=x.dtype)
        weights.append(F.scaled_dot_product_attention(proj["query"][None], proj["key"][None], eye[None],
                                                      is_causal=cfg.causal)[0])
    ref = torch.cat(heads, dim=-1)
    got = batched(mh["wrapper_context_vecs"].tensor, cfg.batch)
    got_weights = batched(mh["wrapper_attn_weights"].tensor, cfg.batch)        # (b, h, T, T)
    for b in range(cfg.batch):
        assert max_diff(got[b], ref) <= TOL[dtype]
        assert max_diff(got_weights[b], torch.stack(weights)) <= TOL[dtype]


@pytest.mark.parametrize("init,bias", [("linear", False), ("linear", True), ("rand", True)])
def test_fused_weights_are_the_books_draw_after_the_trainable_stages(init, bias):
    """MultiHeadAttention's four layers are drawn after manual_seed as the book's class draws them,
    though W_query, W_key, W_value come from the trainable stage's draw (same seed) and only
    out_proj is drawn on from there; the draw leaves the global RNG alone."""
    from core.weights import Projection, draw_fused, draw_qkv
    d_in, d_out, seed = 5, 6, 4321
    qkv = draw_qkv(init, seed, d_in, d_out, bias)
    torch.manual_seed(7)
    fused, out_proj = draw_fused(init, seed, d_in, d_out, bias)
    assert torch.equal(torch.rand(2), (torch.manual_seed(7), torch.rand(2))[1])
    torch.manual_seed(seed)
    if init == "linear":
        book = MultiHeadAttention(d_in, d_out, 4, 0.0, num_heads=2, qkv_bias=bias)
        layers = {"query": book.W_query, "key": book.W_key, "value": book.W_value}
        want = {r: Projection(l.weight.detach().T, None if l.bias is None else l.bias.detach()) for r, l in layers.items()}
    else:                                # torch.rand weights (and biases) in the same order, then out_proj
        want = {}
        for r in ("query", "key", "value"):
            W = torch.rand(d_in, d_out)
            want[r] = Projection(W, torch.rand(d_out) if bias else None)
        book = None
    out = book.out_proj if book is not None else nn.Linear(d_out, d_out)
    for r in ("query", "key", "value"):                   # exact: the same draws from the same state
        assert torch.equal(fused[r].W, want[r].W) and torch.equal(qkv[r].W, want[r].W)
        assert fused[r].W is not qkv[r].W                 # each stage keeps its own tensors
        if bias:
            assert torch.equal(fused[r].b, want[r].b)
    assert torch.equal(out_proj.W, out.weight.detach().T) and torch.equal(out_proj.b, out.bias.detach())
