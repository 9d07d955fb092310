"""Section 3.3: simplified self-attention, no trainable weights.

Every token's embedding is its own query, key and value: scores ω = X Xᵀ, weights
α = softmax(ω) (beside the naive ω / Σω), context vectors Z = α X.
"""
from __future__ import annotations

import torch

from core.stages.lines import lines
from core.stages.ops import Ops
from core.stages.schema import Stage, term

TERMS = {
    "inputs": term("X", "X", "token embeddings, one row per token", "token", "in"),
    "attn_scores": term("ω", "ω = X Xᵀ", "dot product of every query row with every key row", "query", "key"),
    "attn_weights_sumnorm": term("ω/Σω", "ω_ij / Σ_j ω_ij", "the naive normalisation: divide by the row sum",
                                 "query", "key", colours="prob"),
    "attn_weights": term("α", "α = softmax(ω)", "softmax of each row of scores", "query", "key", colours="prob"),
    "context_vecs": term("Z", "Z = α X", "each row: the inputs weighted by that query's attention weights",
                         "token", "in"),
}


def softmax_naive(x: torch.Tensor) -> torch.Tensor:
    """The book's softmax_naive: exp(x) / Σ exp(x) along each row (overflows for large x)."""
    return torch.exp(x) / torch.exp(x).sum(dim=-1, keepdim=True)


def forward(inputs: torch.Tensor, ops: Ops | None = None) -> dict[str, torch.Tensor]:
    """inputs: (num_tokens, d_in) -> every intermediate of section 3.3."""
    ops = ops or Ops()
    record = ops.record
    record("inputs", inputs)
    attn_scores = record("attn_scores", inputs @ inputs.T)                                         # (T, T)
    record("attn_weights_sumnorm", attn_scores / attn_scores.sum(dim=-1, keepdim=True))            # (T, T)
    attn_weights = record("attn_weights", torch.softmax(attn_scores, dim=-1))                      # (T, T)
    record("context_vecs", attn_weights @ inputs)                                                  # (T, d_in)
    return ops.named


def code(cfg) -> list[tuple[str | None, str]]:
    """The code panel's lines, (intermediate or None, line): the forward's own (core.stages.lines)."""
    return lines(forward, given={"inputs": []})


def explain(c):
    """The inspector's rule for a cell of this stage (c: core.provenance.Cell); None: no rule."""
    tok, i, j = c.tok, c.i, c.j
    if c.name == "inputs":
        return c.done("given", f"x_{tok[i]}[{c.col_label(j)}] = {c.f(c.value)}",
                      ["an embedding value: the input, not computed"], c.value)
    if c.name == "attn_scores":
        x = c.get("simplified", "inputs")
        products, total, lines = c.dot(x[i], x[j], f"x_{tok[i]}", f"x_{tok[j]}", ("input dims",))
        return c.done("dot", f"ω[{tok[i]}, {tok[j]}] = x_{tok[i]} · x_{tok[j]}", lines, total,
                      [c.source("simplified", "inputs", (), (i, j), None)], products)
    if c.name == "attn_weights_sumnorm":
        row = c.get("simplified", "attn_scores")[i]
        total = c.sum(row)
        ratio = c.ratio(float(row[j]), total)
        return c.done("ratio", f"ω[{tok[i]}, {tok[j]}] / Σ ω[{tok[i]}, :]",
                      [f"row sum = {' + '.join(c.f(v) for v in row[:8])}{' + …' if len(row) > 8 else ''} = {c.f(total)}",
                       f"{c.f(float(row[j]))} / {c.f(total)} = {c.f(ratio)}"]
                      + (["the row sums to 0: the naive normalisation is undefined here (softmax is not)"]
                         if total == 0 else []),
                      ratio, [c.source("simplified", "attn_scores", (), (i,), None)])
    if c.name == "attn_weights":
        value, lines = c.softmax(c.get("simplified", "attn_scores")[i], j, "attn_scores")
        return c.done("softmax", f"softmax(attn_scores[{tok[i]}, :])[{tok[j]}]", lines, value,
                      [c.source("simplified", "attn_scores", (), (i,), None)])
    if c.name == "context_vecs":
        return c.mix(c.get("simplified", "attn_weights")[i], c.get("simplified", "inputs")[:, j], "x",
                     c.source("simplified", "attn_weights", (), (i,), None),
                     c.source("simplified", "inputs", (), None, (j,)))
    return None


STAGE = Stage("simplified", "Simplified self-attention (no weights)", "3.3", TERMS, forward, code, explain)
