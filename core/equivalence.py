"""The equalities the chapter teaches, computed so they can be shown, not told.

Each function returns (left, right) tensors whose difference the GUI draws as a heatmap
and whose max |diff| it prints; tests assert they agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.stages import multihead, simplified
from core.trace import Trace
from core.weights import Projection


def masking_approaches(trace: Trace) -> tuple[torch.Tensor, torch.Tensor]:
    """Approach A (softmax, × mask, renormalise) vs approach B (−∞, then softmax)."""
    return trace["causal", "renormalized_weights"].tensor, trace["causal", "attn_weights"].tensor


def softmax_naive_vs_torch(trace: Trace) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's softmax_naive vs torch.softmax on the simplified stage's scores."""
    scores = trace["simplified", "attn_scores"].tensor
    return simplified.softmax_naive(scores), trace["simplified", "attn_weights"].tensor


def _batched(t: torch.Tensor, batch: int) -> torch.Tensor:
    return t if batch > 1 else t.unsqueeze(0)


def fused_from_wrapper(trace: Trace) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused implementation loaded with the wrapper's heads concatenated ≡ the wrapper.

    Compared before out_proj: fused context_concat vs wrapper_context_vecs. Shapes (…, T, d_out).
    """
    cfg = trace.config
    mh = trace.stages["multihead"]
    x = trace["simplified", "inputs"].tensor                                   # (T, d_in)
    xb = x.unsqueeze(0).expand(cfg.batch, *x.shape)                           # (b, T, d_in)
    qkv = {}
    for role in ("query", "key", "value"):
        W = torch.cat(list(mh[f"wrapper_W_{role}"].tensor), dim=-1)            # h × (d_in, hd) -> (d_in, d_out)
        b = mh.get(f"wrapper_b_{role}")
        qkv[role] = Projection(W, None if b is None else b.tensor.reshape(-1))  # (h, hd) -> (d_out,)
    out_proj = Projection(mh["W_out"].tensor, mh["b_out"].tensor)
    mask = trace["causal", "mask"].tensor
    fused = multihead.fused(xb, qkv, out_proj, cfg.num_heads, mask)["context_concat"]
    wrapped = _batched(mh["wrapper_context_vecs"].tensor, cfg.batch)
    return fused.squeeze(0) if cfg.batch == 1 else fused, wrapped.squeeze(0) if cfg.batch == 1 else wrapped


def trace_vs_sdpa(trace: Trace) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal stage's context vectors (no dropout) vs F.scaled_dot_product_attention.

    With dropout > 0 the trace's dropped weights are used on both sides' weights, so this
    compares the pre-dropout path: softmax(mask(QKᵀ)/√d_k) V.
    """
    cfg = trace.config
    tr = trace.stages["trainable"]
    q, k, v = tr["queries"].tensor, tr["keys"].tensor, tr["values"].tensor     # (T, d_out)
    ref = F.scaled_dot_product_attention(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0),
                                         is_causal=cfg.causal).squeeze(0)       # (T, d_out)
    ours = _batched(trace["causal", "attn_weights"].tensor, cfg.batch)[0] @ v
    return ours, ref


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b|, treating equal infinities as equal."""
    a64, b64 = a.detach().double().cpu(), b.detach().double().cpu()
    same = (a64 == b64)
    diff = torch.where(same, torch.zeros_like(a64), (a64 - b64).abs())
    return float(diff.max()) if diff.numel() else 0.0
