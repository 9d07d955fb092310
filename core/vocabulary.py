"""DESIGN.md's vocabulary: one name per intermediate, with its symbol, formula and axes.

Axis kinds name where labels come from: "query"/"key"/"token" use the tokens, "in"/"out"/
"hd" the dimension names, "head" and "batch" their indices. A leading "batch" axis is
added at run time to causal and multi-head tensors when batch > 1.
"""
from __future__ import annotations

from dataclasses import dataclass

STAGES = ("simplified", "trainable", "causal", "multihead")

STAGE_TITLES = {
    "simplified": "Simplified self-attention (no weights)",
    "trainable": "Self-attention with trainable weights",
    "causal": "Causal attention",
    "multihead": "Multi-head attention",
}

# Stages whose tensors gain a leading batch axis when batch > 1 (the book batches from 3.5.3 on).
BATCHED_STAGES = ("causal", "multihead")


@dataclass(frozen=True)
class Term:
    symbol: str
    formula: str
    meaning: str
    axes: tuple[str, ...]
    batched: bool = False  # gains a leading batch axis when batch > 1


def _t(symbol, formula, meaning, *axes, batched=False) -> Term:
    return Term(symbol, formula, meaning, tuple(axes), batched)


VOCABULARY: dict[str, dict[str, Term]] = {
    "simplified": {
        "inputs": _t("X", "X", "token embeddings, one row per token", "token", "in"),
        "attn_scores": _t("ω", "ω = X Xᵀ", "dot product of every query row with every key row", "query", "key"),
        "attn_weights_sumnorm": _t("ω/Σω", "ω_ij / Σ_j ω_ij", "the naive normalisation: divide by the row sum", "query", "key"),
        "attn_weights": _t("α", "α = softmax(ω)", "softmax of each row of scores", "query", "key"),
        "context_vecs": _t("Z", "Z = α X", "each row: the inputs weighted by that query's attention weights", "token", "in"),
    },
    "trainable": {
        "W_query": _t("W_q", "W_q", "query projection weights", "in", "out"),
        "W_key": _t("W_k", "W_k", "key projection weights", "in", "out"),
        "W_value": _t("W_v", "W_v", "value projection weights", "in", "out"),
        "b_query": _t("b_q", "b_q", "query projection bias", "out"),
        "b_key": _t("b_k", "b_k", "key projection bias", "out"),
        "b_value": _t("b_v", "b_v", "value projection bias", "out"),
        "queries": _t("Q", "Q = X W_q", "one query vector per token", "token", "out"),
        "keys": _t("K", "K = X W_k", "one key vector per token", "token", "out"),
        "values": _t("V", "V = X W_v", "one value vector per token", "token", "out"),
        "attn_scores": _t("ω", "ω = Q Kᵀ", "query · key for every pair of tokens", "query", "key"),
        "scaled_scores": _t("ω/√d_k", "ω / √d_k", "scores scaled by 1/√d_k to keep softmax from saturating", "query", "key"),
        "attn_weights": _t("A", "A = softmax(ω/√d_k)", "softmax of each row of scaled scores", "query", "key"),
        "context_vecs": _t("Z", "Z = A V", "attention-weighted sum of value vectors", "token", "out"),
    },
    "causal": {
        "mask": _t("M", "M = tril(1)", "1 where a query may attend (itself and earlier tokens)", "query", "key"),
        "attn_scores": _t("ω", "ω = Q Kᵀ", "query · key for every pair of tokens", "query", "key", batched=True),
        "masked_scores": _t("ω_masked", "ω, −∞ above the diagonal", "approach B: scores with future tokens set to −∞ (unscaled)", "query", "key", batched=True),
        "attn_weights": _t("A", "A = softmax(ω_masked/√d_k)", "approach B: softmax of the masked, scaled scores", "query", "key", batched=True),
        "masked_simple": _t("A ⊙ M", "softmax(ω/√d_k) ⊙ M", "approach A, first half: softmax, then zero the future", "query", "key", batched=True),
        "renormalized_weights": _t("A_renorm", "(A ⊙ M) / row sum", "approach A: rows renormalised to sum to 1", "query", "key", batched=True),
        "dropout_mask": _t("D", "D ~ Bernoulli(1−p)", "1 kept / 0 dropped (nn.Dropout)", "query", "key", batched=True),
        "dropped_weights": _t("A_drop", "A ⊙ D / (1−p)", "attention weights after dropout, kept ones scaled by 1/(1−p)", "query", "key", batched=True),
        "context_vecs": _t("Z", "Z = A_drop V", "(dropped) attention weights × values", "token", "out", batched=True),
    },
    "multihead": {
        "wrapper_W_query": _t("W_q⁽ʰ⁾", "W_q⁽ʰ⁾", "the wrapper's per-head query weights", "head", "in", "hd"),
        "wrapper_W_key": _t("W_k⁽ʰ⁾", "W_k⁽ʰ⁾", "the wrapper's per-head key weights", "head", "in", "hd"),
        "wrapper_W_value": _t("W_v⁽ʰ⁾", "W_v⁽ʰ⁾", "the wrapper's per-head value weights", "head", "in", "hd"),
        "wrapper_b_query": _t("b_q⁽ʰ⁾", "b_q⁽ʰ⁾", "the wrapper's per-head query bias", "head", "hd"),
        "wrapper_b_key": _t("b_k⁽ʰ⁾", "b_k⁽ʰ⁾", "the wrapper's per-head key bias", "head", "hd"),
        "wrapper_b_value": _t("b_v⁽ʰ⁾", "b_v⁽ʰ⁾", "the wrapper's per-head value bias", "head", "hd"),
        "wrapper_context_vecs": _t("Z_wrap", "concat(head₁(X), …, head_h(X))", "wrapper output: independent causal heads concatenated", "token", "out", batched=True),
        "W_query": _t("W_q", "W_q", "fused query projection (all heads side by side)", "in", "out"),
        "W_key": _t("W_k", "W_k", "fused key projection (all heads side by side)", "in", "out"),
        "W_value": _t("W_v", "W_v", "fused value projection (all heads side by side)", "in", "out"),
        "b_query": _t("b_q", "b_q", "fused query bias", "out"),
        "b_key": _t("b_k", "b_k", "fused key bias", "out"),
        "b_value": _t("b_v", "b_v", "fused value bias", "out"),
        "queries": _t("Q⁽ʰ⁾", "(X W_q).view(T, h, hd).transpose", "per-head queries", "head", "token", "hd", batched=True),
        "keys": _t("K⁽ʰ⁾", "(X W_k).view(T, h, hd).transpose", "per-head keys", "head", "token", "hd", batched=True),
        "values": _t("V⁽ʰ⁾", "(X W_v).view(T, h, hd).transpose", "per-head values", "head", "token", "hd", batched=True),
        "attn_scores": _t("ω⁽ʰ⁾", "Q⁽ʰ⁾ K⁽ʰ⁾ᵀ", "per-head scores", "head", "query", "key", batched=True),
        "masked_scores": _t("ω⁽ʰ⁾_masked", "ω⁽ʰ⁾, −∞ above the diagonal", "per-head masked scores", "head", "query", "key", batched=True),
        "attn_weights": _t("A⁽ʰ⁾", "softmax(ω⁽ʰ⁾_masked / √hd)", "per-head attention weights", "head", "query", "key", batched=True),
        "context_heads": _t("Z⁽ʰ⁾", "A⁽ʰ⁾ V⁽ʰ⁾", "per-head context vectors", "head", "token", "hd", batched=True),
        "context_concat": _t("Z_cat", "Z⁽ʰ⁾.transpose.view(T, d_out)", "heads merged back side by side", "token", "out", batched=True),
        "W_out": _t("W_o", "W_o", "output projection weights (out_proj.weight.T)", "out", "out"),
        "b_out": _t("b_o", "b_o", "output projection bias", "out"),
        "context_vecs": _t("Z", "Z = Z_cat W_o + b_o", "fused output after out_proj", "token", "out", batched=True),
    },
}
