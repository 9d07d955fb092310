"""The trace against torch's own attention: F.scaled_dot_product_attention and nn.MultiheadAttention.

Parametrised over sizes (tokens 1..64, d_in, d_out, heads, causal, qkv_bias, batch, init) in
float32 (max |diff| ≤ 1e-5) and float64 (≤ 1e-10).
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core import AttentionConfig, build_trace

TOL = {"float32": 1e-5, "float64": 1e-10}

# (tokens, d_in, d_out, heads, causal, qkv_bias, batch, init)
SIZES = [
    (1, 3, 2, 2, True, False, 1, "linear"),
    (2, 1, 1, 1, True, True, 1, "linear"),
    (6, 3, 2, 2, True, False, 2, "linear"),
    (6, 3, 4, 2, False, False, 1, "rand"),
    (7, 5, 6, 3, True, True, 3, "linear"),
    (16, 8, 8, 8, False, True, 2, "linear"),
    (33, 16, 12, 4, True, False, 1, "rand"),
    (64, 16, 16, 2, True, True, 2, "linear"),
    (64, 32, 24, 6, False, False, 1, "linear"),
]
IDS = [f"T{t}-din{di}-dout{do}-h{h}-{'causal' if c else 'full'}{'-bias' if qb else ''}-b{b}-{init}"
       for t, di, do, h, c, qb, b, init in SIZES]


def make_config(size, dtype) -> AttentionConfig:
    tokens, d_in, d_out, heads, causal, qkv_bias, batch, init = size
    text = " ".join(f"w{i}" for i in range(tokens))
    return AttentionConfig(embeddings="random", text=text, d_in=d_in, d_out=d_out, num_heads=heads,
                           causal=causal, qkv_bias=qkv_bias, batch=batch, init=init, seed=7,
                           device="cpu", dtype=dtype)


def batched(t: torch.Tensor, b: int) -> torch.Tensor:
    return t if b > 1 else t.unsqueeze(0)


def max_diff(a, b) -> float:
    return float((a - b).abs().max())


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_trainable_and_causal_equal_sdpa(size, dtype):
    cfg = make_config(size, dtype)
    t = build_trace(cfg)
    tr = t.stages["trainable"]
    q, k, v = tr["queries"].tensor, tr["keys"].tensor, tr["values"].tensor
    ref = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]
    assert max_diff(tr["context_vecs"].tensor, ref) <= TOL[dtype]
    # causal stage: the batch of copies, masked when causal (dropout 0)
    qb, kb, vb = (x.expand(cfg.batch, *x.shape) for x in (q, k, v))
    ref_c = F.scaled_dot_product_attention(qb, kb, vb, is_causal=cfg.causal)
    got = batched(t["causal", "context_vecs"].tensor, cfg.batch)
    assert got.shape == ref_c.shape
    assert max_diff(got, ref_c) <= TOL[dtype]


# nn.MultiheadAttention projects a query of width embed_dim, so there d_in == d_out.
MHA_SIZES = [s for s in SIZES if s[1] == s[2]] + [
    (1, 4, 4, 2, True, True, 1, "linear"),
    (6, 2, 2, 2, True, False, 2, "linear"),
    (21, 12, 12, 3, True, True, 2, "rand"),
    (64, 24, 24, 6, True, False, 1, "linear"),
    (64, 64, 64, 8, False, True, 1, "linear"),
    # large enough for the CPU fast paths of core.steps (tested against torch at every size):
    (300, 16, 16, 4, True, True, 2, "linear"),    # causal A·V in row blocks (T ≥ 256), ragged last block
    (512, 16, 16, 8, True, False, 1, "linear"),   # softmax in row chunks (scores ≥ 8 MiB), √d_k = √2
    (520, 32, 32, 8, True, True, 1, "rand"),      # chunks that do not divide T, √d_k = 2
    (600, 16, 16, 8, False, False, 1, "linear"),  # no mask, in chunks
]
MHA_IDS = [f"T{t}-d{di}-h{h}-{'causal' if c else 'full'}{'-bias' if qb else ''}-b{b}-{init}"
           for t, di, do, h, c, qb, b, init in MHA_SIZES]


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
    heads = []
    for h in range(cfg.num_heads):
        proj = {}
        for role in ("query", "key", "value"):
            out = x @ mh[f"wrapper_W_{role}"].tensor[h]
            if cfg.qkv_bias:
                out = out + mh[f"wrapper_b_{role}"].tensor[h]
            proj[role] = out
        heads.append(F.scaled_dot_product_attention(proj["query"][None], proj["key"][None], proj["value"][None],
                                                    is_causal=cfg.causal)[0])
    ref = torch.cat(heads, dim=-1)
    got = batched(mh["wrapper_context_vecs"].tensor, cfg.batch)
    for b in range(cfg.batch):
        assert max_diff(got[b], ref) <= TOL[dtype]
