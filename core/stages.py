"""One pure function per stage of chapter 3, each returning its named intermediates.

Each function takes tensors (already on the trace's device and dtype) and returns an
ordered ``dict`` name -> new tensor, using DESIGN.md's vocabulary. Batched stages work on
(b, T, ·) inputs; the trace drops the batch axis again when b == 1.
"""
from __future__ import annotations

import torch

from core import steps
from core.lazy import Lazy
from core.weights import Projection


def _weights(prefix: str, proj: dict[str, Projection]) -> dict[str, torch.Tensor]:
    out = {f"{prefix}W_{role}": p.W for role, p in proj.items()}
    for role, p in proj.items():
        if p.b is not None:
            out[f"{prefix}b_{role}"] = p.b
    return out


def simplified(inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Section 3.3: scores X Xᵀ, naive ω/Σω, softmax, context α X.  inputs: (T, d_in)."""
    attn_scores = steps.dot_scores(inputs, inputs)                 # (T, T)
    attn_weights_sumnorm = steps.sum_normalize(attn_scores)        # (T, T)
    attn_weights = steps.softmax_rows(attn_scores)                 # (T, T)
    context_vecs = steps.mix(attn_weights, inputs)                 # (T, d_in)
    return {
        "inputs": inputs,
        "attn_scores": attn_scores,
        "attn_weights_sumnorm": attn_weights_sumnorm,
        "attn_weights": attn_weights,
        "context_vecs": context_vecs,
    }


def trainable(inputs: torch.Tensor, qkv: dict[str, Projection]) -> dict[str, torch.Tensor]:
    """Section 3.4: Q, K, V, scores Q Kᵀ, scaled by 1/√d_k, softmax, context A V."""
    queries = steps.project(inputs, qkv["query"])                  # (T, d_out)
    keys = steps.project(inputs, qkv["key"])                       # (T, d_out)
    values = steps.project(inputs, qkv["value"])                   # (T, d_out)
    attn_scores = steps.dot_scores(queries, keys)                  # (T, T)
    scaled_scores = steps.scale(attn_scores, keys.shape[-1])       # (T, T)
    attn_weights = steps.softmax_rows(scaled_scores)               # (T, T)
    context_vecs = steps.mix(attn_weights, values)                 # (T, d_out)
    return {
        **_weights("", qkv),
        "queries": queries,
        "keys": keys,
        "values": values,
        "attn_scores": attn_scores,
        "scaled_scores": scaled_scores,
        "attn_weights": attn_weights,
        "context_vecs": context_vecs,
    }


def _batched(shared: dict[str, torch.Tensor], name: str, b: int) -> torch.Tensor:
    """One sequence's (T, ·) tensor as the batch of b identical copies, (b, T, ·): a view, like xb."""
    t = shared[name]
    return t.unsqueeze(0).expand(b, *t.shape)


def causal(batch_inputs: torch.Tensor, qkv: dict[str, Projection], mask: torch.Tensor,
           keep: torch.Tensor, p: float, shared: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Section 3.5: both masking approaches, dropout, context.  batch_inputs: (b, T, d_in).

    mask: (T, T) with 1 where attending is allowed; keep: (b, T, T) dropout keep mask.
    shared: the trainable stage's queries, keys, values and attn_scores when it ran on the same
    inputs with the same weights (same seed): the batch's copies are views of them.
    """
    b = batch_inputs.shape[0]
    if shared is None:
        queries = steps.project(batch_inputs, qkv["query"])        # (b, T, d_out)
        keys = steps.project(batch_inputs, qkv["key"])             # (b, T, d_out)
        values = steps.project(batch_inputs, qkv["value"])         # (b, T, d_out)
        attn_scores = steps.dot_scores(queries, keys)              # (b, T, T)
    else:
        keys = _batched(shared, "keys", b)                         # (b, T, d_out)
        values = _batched(shared, "values", b)                     # (b, T, d_out)
        attn_scores = _batched(shared, "attn_scores", b)           # (b, T, T)
    d_k = keys.shape[-1]
    # Approach B: −inf above the diagonal, then softmax (what CausalAttention does).
    masked_scores = steps.mask_scores(attn_scores, mask)           # (b, T, T)
    attn_weights = steps.softmax_rows(steps.scale(masked_scores, d_k))
    # Approach A: softmax first, zero the future, renormalise the rows.
    masked_simple = steps.zero_masked(steps.softmax_rows(steps.scale(attn_scores, d_k)), mask)
    renormalized_weights = steps.renormalize(masked_simple, fallback=attn_weights)  # (b, T, T)
    dropped_weights = steps.apply_dropout(attn_weights, keep, p)   # (b, T, T)
    context_vecs = steps.mix(dropped_weights, values)              # (b, T, d_out)
    return {
        "mask": mask,
        "attn_scores": attn_scores,
        "masked_scores": masked_scores,
        "attn_weights": attn_weights,
        "masked_simple": masked_simple,
        "renormalized_weights": renormalized_weights,
        "dropout_mask": keep,
        "dropped_weights": dropped_weights,
        "context_vecs": context_vecs,
    }


def causal_head(batch_inputs: torch.Tensor, qkv: dict[str, Projection], mask: torch.Tensor) -> torch.Tensor:
    """One CausalAttention head in eval mode (no dropout): (b, T, d_in) -> (b, T, hd)."""
    queries = steps.project(batch_inputs, qkv["query"])
    keys = steps.project(batch_inputs, qkv["key"])
    values = steps.project(batch_inputs, qkv["value"])
    scores = steps.mask_scores(steps.dot_scores(queries, keys), mask)
    weights = steps.softmax_rows(steps.scale(scores, keys.shape[-1]))
    return steps.mix(weights, values)


def stack_heads(heads: list[dict[str, Projection]]) -> dict[str, torch.Tensor]:
    """The wrapper's per-head weights as (h, d_in, hd) stacks (and biases as (h, hd))."""
    out = {}
    for role in ("query", "key", "value"):
        out[f"wrapper_W_{role}"] = torch.stack([h[role].W for h in heads])          # (h, d_in, hd)
    for role in ("query", "key", "value"):
        if heads[0][role].b is not None:
            out[f"wrapper_b_{role}"] = torch.stack([h[role].b for h in heads])      # (h, hd)
    return out


def wrapper(batch_inputs: torch.Tensor, heads: list[dict[str, Projection]], mask: torch.Tensor,
            stacked: dict[str, torch.Tensor] | None = None) -> dict:
    """MultiHeadAttentionWrapper: independent causal heads, outputs concatenated.

    The wrapper's output is a second implementation shown for comparison, so it is derived
    (computed when first looked at) rather than on every parameter change. ``stacked`` is
    ``stack_heads(heads)`` when the caller keeps it (the weights do not change between traces).
    """
    b, num_tokens, _ = batch_inputs.shape
    d_out = sum(h["value"].W.shape[1] for h in heads)

    def concat_heads() -> torch.Tensor:
        per_head = [causal_head(batch_inputs, h, mask) for h in heads]         # h × (b, T, hd)
        return torch.cat(per_head, dim=-1)                                      # (b, T, d_out)

    stacked = stack_heads(heads) if stacked is None else stacked
    return {**stacked, "wrapper_context_vecs": Lazy(concat_heads, (b, num_tokens, d_out))}


def fused(batch_inputs: torch.Tensor, qkv: dict[str, Projection], out_proj: Projection,
          num_heads: int, mask: torch.Tensor, causal: bool = True,
          additive: torch.Tensor | None = None, shared: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """MultiHeadAttention: one projection per role, split into heads, merged, out_proj.

    causal: the mask is the lower triangle (the weights are 0 above the diagonal);
    additive: steps.additive_mask(mask), when the caller keeps it;
    shared: the trainable stage's (T, d_out) queries, keys and values when its W_query, W_key
    and W_value are these (the same seed draws the same first three layers).
    """
    b = batch_inputs.shape[0]

    def projected(role: str) -> torch.Tensor:                                         # (b, T, d_out)
        if shared is None:
            return steps.project(batch_inputs, qkv[role])
        return _batched(shared, {"query": "queries", "key": "keys", "value": "values"}[role], b)

    queries = steps.split_heads(projected("query"), num_heads)                        # (b, h, T, hd)
    keys = steps.split_heads(projected("key"), num_heads)                             # (b, h, T, hd)
    values = steps.split_heads(projected("value"), num_heads)                         # (b, h, T, hd)
    attn_scores = steps.dot_scores(queries, keys)                                     # (b, h, T, T)
    # h·T² floats each: the masked scores are derived on first look, the weights computed
    # with one buffer (at 1024 tokens × 12 heads every T×T tensor is 50 MB).
    masked_scores = Lazy(lambda: steps.mask_scores(attn_scores, mask), attn_scores.shape)  # (b, h, T, T)
    attn_weights = steps.masked_softmax(attn_scores, mask, keys.shape[-1], additive)  # (b, h, T, T)
    if causal:
        b, h, num_tokens, hd = values.shape
        merged = torch.empty(b, num_tokens, h, hd, dtype=values.dtype, device=values.device)  # (b, T, h, hd)
        # written through its (b, h, T, hd) transpose, so merge_heads below is a view, not a copy
        context_heads = steps.mix_causal(attn_weights, values, merged.transpose(1, 2))  # (b, h, T, hd)
    else:
        context_heads = steps.mix(attn_weights, values)                               # (b, h, T, hd)
    context_concat = steps.merge_heads(context_heads)                                 # (b, T, d_out)
    context_vecs = steps.project(context_concat, out_proj)                            # (b, T, d_out)
    return {
        **_weights("", qkv),
        "queries": queries,
        "keys": keys,
        "values": values,
        "attn_scores": attn_scores,
        "masked_scores": masked_scores,
        "attn_weights": attn_weights,
        "context_heads": context_heads,
        "context_concat": context_concat,
        "W_out": out_proj.W,
        "b_out": out_proj.b,
        "context_vecs": context_vecs,
    }
