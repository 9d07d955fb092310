"""Section 3.5: causal attention (CausalAttention), on a batch of inputs.

The mask hides every token after the query: approach A (softmax, zero the future,
renormalise the rows) beside approach B (−∞ above the diagonal, then softmax), which give
the same weights; dropout on the attention weights; context vectors.
"""
from __future__ import annotations

import torch

from core.stages.lines import lines, shown_as_first
from core.stages.ops import Ops
from core.stages.schema import Stage, term
from core.stages.trainable import qkv_values, weight_lines, weights
from core.weights import Projection

TERMS = {
    # CausalAttention's own projections: the trainable stage's weights (same seed, same draw)
    # applied to the batch. Exported; the window shows the trainable stage's.
    "W_query": term("W_q", "W_q", "CausalAttention's query weights", "in", "out", shown=False),
    "W_key": term("W_k", "W_k", "CausalAttention's key weights", "in", "out", shown=False),
    "W_value": term("W_v", "W_v", "CausalAttention's value weights", "in", "out", shown=False),
    "b_query": term("b_q", "b_q", "CausalAttention's query bias", "out", shown=False, optional=True),
    "b_key": term("b_k", "b_k", "CausalAttention's key bias", "out", shown=False, optional=True),
    "b_value": term("b_v", "b_v", "CausalAttention's value bias", "out", shown=False, optional=True),
    "queries": term("Q", "Q = X W_q", "one query vector per token", "token", "out", batched=True, shown=False),
    "keys": term("K", "K = X W_k", "one key vector per token", "token", "out", batched=True, shown=False),
    "values": term("V", "V = X W_v", "one value vector per token", "token", "out", batched=True, shown=False),
    "mask": term("M", "M = tril(1)", "1 where a query may attend (itself and earlier tokens)", "query", "key",
                 colours="binary"),
    "attn_scores": term("ω", "ω = Q Kᵀ", "query · key for every pair of tokens", "query", "key", batched=True),
    "masked_scores": term("ω_masked", "ω, −∞ above the diagonal",
                          "approach B: scores with future tokens set to −∞ (unscaled)", "query", "key", batched=True,
                          masked=True),
    "attn_weights": term("A", "A = softmax(ω_masked/√d_k)", "approach B: softmax of the masked, scaled scores",
                         "query", "key", batched=True, masked=True, colours="prob"),
    "masked_simple": term("A ⊙ M", "softmax(ω/√d_k) ⊙ M", "approach A, first half: softmax, then zero the future",
                          "query", "key", batched=True, masked=True, colours="prob"),
    "renormalized_weights": term("A_renorm", "(A ⊙ M) / row sum", "approach A: rows renormalised to sum to 1",
                                 "query", "key", batched=True, masked=True, colours="prob"),
    "dropout_mask": term("D", "D ~ Bernoulli(1−p)", "1 kept / 0 dropped (nn.Dropout)", "query", "key", batched=True,
                         colours="binary"),
    "dropped_weights": term("A_drop", "A ⊙ D / (1−p)", "attention weights after dropout, kept ones scaled by 1/(1−p)",
                            "query", "key", batched=True, masked=True, colours="nonneg"),
    "context_vecs": term("Z", "Z = A_drop V", "(dropped) attention weights × values", "token", "out", batched=True),
}


def causal_mask(num_tokens: int, causal: bool = True, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """1 where a query may attend: the lower triangle (causal) or everywhere. (T, T)."""
    ones = torch.ones(num_tokens, num_tokens, device=device, dtype=dtype)
    return torch.tril(ones) if causal else ones


@shown_as_first
def exact_rows(renormalized: torch.Tensor, masked_simple: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Approach A's second half, ``renormalized`` (each row of ``masked_simple`` divided by its sum),
    where it is exact; the code panel shows ``renormalized`` (core.stages.lines).

    When scores lie far apart, softmax can underflow every kept weight of a row to 0 (or to
    imprecise subnormals) and the division gives 0/0 = nan: such rows take ``fallback``'s
    (approach B's weights, the same values computed without the underflow).
    """
    info = torch.finfo(masked_simple.dtype)
    trusted = masked_simple.amax(dim=-1, keepdim=True) >= info.tiny / info.eps   # the row's largest weight is exact
    return torch.where(trusted, renormalized, fallback)


def attention_weights(queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor, ops: Ops) -> torch.Tensor:
    """Approach B (what CausalAttention and MultiHeadAttention do): scores, −∞ where the mask is 0,
    softmax of the scaled rows. Records attn_scores, masked_scores and attn_weights; returns the weights."""
    attn_scores = ops.record("attn_scores", ops.scores(queries, keys))                   # (…, T, T)
    masked_scores = ops.record("masked_scores", ops.masked(attn_scores, mask))           # (…, T, T)
    return ops.record("attn_weights", ops.softmax(masked_scores, keys.shape[-1], attn_scores, mask))  # (…, T, T)


def forward(batch: torch.Tensor, qkv: dict[str, Projection], mask: torch.Tensor, dropout_mask: torch.Tensor,
            p: float, ops: Ops | None = None) -> dict[str, torch.Tensor]:
    """batch: (b, num_tokens, d_in); mask: (T, T), 1 = may attend; dropout_mask: (b, T, T), 1 = kept."""
    ops = ops or Ops()
    record = ops.record
    ops.named.update(weights(qkv))
    queries = record("queries", ops.project(batch, qkv["query"], "query"))   # (b, T, d_in) -> (b, T, d_out)
    keys = record("keys", ops.project(batch, qkv["key"], "key"))             # (b, T, d_in) -> (b, T, d_out)
    values = record("values", ops.project(batch, qkv["value"], "value"))     # (b, T, d_in) -> (b, T, d_out)
    record("mask", mask)
    # Approach B: −∞ above the diagonal, then softmax (attn_scores, masked_scores, attn_weights).
    attn_weights = attention_weights(queries, keys, mask, ops)               # (b, T, T)
    attn_scores = ops.named["attn_scores"]
    # Approach A: softmax first, zero the future, renormalise the rows.
    masked_simple = record("masked_simple",
                           torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1) * mask)   # (b, T, T)
    record("renormalized_weights", exact_rows(masked_simple / masked_simple.sum(dim=-1, keepdim=True),
                                              masked_simple, fallback=attn_weights))              # (b, T, T)
    # nn.Dropout(p) in training mode: kept weights scaled by 1/(1−p).
    record("dropout_mask", dropout_mask)
    dropped_weights = record("dropped_weights", attn_weights * dropout_mask / (1 - p))      # (b, T, T)
    record("context_vecs", ops.mix(dropped_weights, values))                 # (b, T, d_out)
    return ops.named


def mask_line(cfg) -> str:
    return "torch.tril(torch.ones(T, T))" if cfg.causal else "torch.ones(T, T)  # causal off: attend everywhere"


def code(cfg) -> list[tuple[str | None, str]]:
    """The weights' draw and the batch, then the forward's own lines (core.stages.lines), with the
    mask and the dropout draw it is given written where it records them."""
    dropout = ("dropout_mask = torch.empty(attn_weights.shape).bernoulli_(1 - p)  # what nn.Dropout(p) draws"
               if cfg.dropout > 0 else "dropout_mask = torch.ones(attn_weights.shape)  # p = 0: nothing dropped")
    given = {"mask": [(None, "T = batch.shape[1]"), ("mask", f"mask = {mask_line(cfg)}")],
             "dropout_mask": [(None, f"torch.manual_seed({cfg.dropout_seed})"), ("dropout_mask", dropout)]}
    return weight_lines(cfg) + [(None, batch_line(cfg))] + lines(forward, given, qkv_values(cfg))


def batch_line(cfg) -> str:
    return f"batch = torch.stack([inputs] * {cfg.batch})  # (b, T, d_in)"


def explain(c):
    tok, i, j, name, lead = c.tok, c.i, c.j, c.name, c.lead
    if c.is_weight():
        return c.weight()
    if name in ("queries", "keys", "values"):
        return c.projection(j)
    if name == "mask":
        return c.done("mask", f"mask[{tok[i]}, {tok[j]}] = {int(c.value)}",
                      [f"{tok[i]} may attend to {tok[j]}" if c.value else f"{tok[j]} comes after {tok[i]}: hidden"],
                      c.value)
    if name == "dropout_mask":
        return c.done("dropout", f"dropout_mask[{tok[i]}, {tok[j]}] = {int(c.value)}",
                      [("kept" if c.value else "dropped") + f": drawn with p = {c.cfg.dropout} after "
                       f"torch.manual_seed({c.cfg.dropout_seed})"], c.value)
    if name == "attn_scores":
        return c.score("trainable", ())        # the batch's copies share the trainable stage's Q and K
    if name == "masked_scores":
        return c.masked()
    if name == "attn_weights":
        return c.masked_softmax(c.cfg.d_out)
    if name == "masked_simple":
        w = float(c.get("trainable", "attn_weights")[i, j])
        m = float(c.get("causal", "mask")[i, j])
        return c.done("mask", f"softmax(scores/√d_k)[{tok[i]}, {tok[j]}] × mask", [f"{c.f(w)} × {int(m)} = {c.f(w * m)}"],
                      w * m, [c.source("trainable", "attn_weights", (), (i,), (j,)),
                              c.source("causal", "mask", (), (i,), (j,))])
    if name == "renormalized_weights":
        row = c.get("causal", "masked_simple", c.b)[i]
        total = c.sum(row)
        if c.underflowed(row):  # the trace took approach B's row (see exact_rows)
            scaled = c.get("causal", "masked_scores", c.b)[i] / c.cfg.d_out ** 0.5
            value, lines = c.softmax(scaled, j, f"masked scores / √{c.cfg.d_out}")
            return c.done("softmax", f"softmax(masked[{tok[i]}, :] / √{c.cfg.d_out})[{tok[j]}]",
                          [f"softmax underflowed every kept weight of this row to 0 (row sum {c.f(total)}: the "
                           "scores lie far apart), so (A ⊙ M) / row sum is 0/0; shown is approach B's weight, "
                           "the same number", *lines], value, [c.source("causal", "masked_scores", lead, (i,), None)])
        return c.done("ratio", f"(A ⊙ M)[{tok[i]}, {tok[j]}] / row sum",
                      [f"row sum = {c.f(total)} (the future's weight is gone, so rows no longer sum to 1)",
                       f"{c.f(float(row[j]))} / {c.f(total)} = {c.f(float(row[j]) / total)}"],
                      float(row[j]) / total, [c.source("causal", "masked_simple", lead, (i,), None)])
    if name == "dropped_weights":
        w = float(c.get("causal", "attn_weights", c.b)[i, j])
        keep = float(c.get("causal", "dropout_mask", c.b)[i, j])
        p = c.cfg.dropout
        return c.done("dropout", f"A[{tok[i]}, {tok[j]}] × D / (1 − p)",
                      [f"{c.f(w)} × {int(keep)} / (1 − {p}) = {c.f(w * keep / (1 - p))}"], w * keep / (1 - p),
                      [c.source("causal", "attn_weights", lead, (i,), (j,)),
                       c.source("causal", "dropout_mask", lead, (i,), (j,))])
    if name == "context_vecs":
        return c.mix(c.get("causal", "dropped_weights", c.b)[i], c.get("trainable", "values")[:, j], "v",
                     c.source("causal", "dropped_weights", lead, (i,), None),
                     c.source("trainable", "values", (), None, (j,)))
    return None


STAGE = Stage("causal", "Causal attention", "3.5", TERMS, forward, code, explain, batched=True)
