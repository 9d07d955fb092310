"""Section 3.6: multi-head attention, two ways.

MultiHeadAttentionWrapper runs independent CausalAttention heads and concatenates their
outputs; MultiHeadAttention projects once per role, splits the result into heads with
view/transpose, attends per head, merges the heads back and applies out_proj.
"""
from __future__ import annotations

import torch

from core.stages.causal import attention_weights, batch_line, mask_line
from core.stages.lines import definition, lines
from core.stages.ops import Ops
from core.stages.schema import Stage, term
from core.stages.trainable import ROLES, draw_lines, qkv_values, weight_lines, weights, widen
from core.weights import Projection

TERMS = {
    "wrapper_W_query": term("W_q⁽ʰ⁾", "W_q⁽ʰ⁾", "the wrapper's per-head query weights", "head", "in", "hd"),
    "wrapper_W_key": term("W_k⁽ʰ⁾", "W_k⁽ʰ⁾", "the wrapper's per-head key weights", "head", "in", "hd"),
    "wrapper_W_value": term("W_v⁽ʰ⁾", "W_v⁽ʰ⁾", "the wrapper's per-head value weights", "head", "in", "hd"),
    "wrapper_b_query": term("b_q⁽ʰ⁾", "b_q⁽ʰ⁾", "the wrapper's per-head query bias", "head", "hd", optional=True),
    "wrapper_b_key": term("b_k⁽ʰ⁾", "b_k⁽ʰ⁾", "the wrapper's per-head key bias", "head", "hd", optional=True),
    "wrapper_b_value": term("b_v⁽ʰ⁾", "b_v⁽ʰ⁾", "the wrapper's per-head value bias", "head", "hd", optional=True),
    "wrapper_attn_weights": term("A_wrap⁽ʰ⁾", "softmax(ω⁽ʰ⁾_masked / √hd), head h's own W",
                                 "each wrapper head's causal attention weights (no dropout)",
                                 "head", "query", "key", batched=True, shown=False),
    "wrapper_context_vecs": term("Z_wrap", "concat(head₁(X), …, head_h(X))",
                                 "wrapper output: independent causal heads concatenated", "token", "out", batched=True,
                                 head_columns=True),
    "W_query": term("W_q", "W_q", "fused query projection (all heads side by side)", "in", "out", head_columns=True),
    "W_key": term("W_k", "W_k", "fused key projection (all heads side by side)", "in", "out", head_columns=True),
    "W_value": term("W_v", "W_v", "fused value projection (all heads side by side)", "in", "out", head_columns=True),
    "b_query": term("b_q", "b_q", "fused query bias", "out", optional=True, head_columns=True),
    "b_key": term("b_k", "b_k", "fused key bias", "out", optional=True, head_columns=True),
    "b_value": term("b_v", "b_v", "fused value bias", "out", optional=True, head_columns=True),
    "queries": term("Q⁽ʰ⁾", "(X W_q).view(T, h, hd).transpose", "per-head queries", "head", "token", "hd", batched=True),
    "keys": term("K⁽ʰ⁾", "(X W_k).view(T, h, hd).transpose", "per-head keys", "head", "token", "hd", batched=True),
    "values": term("V⁽ʰ⁾", "(X W_v).view(T, h, hd).transpose", "per-head values", "head", "token", "hd", batched=True),
    "attn_scores": term("ω⁽ʰ⁾", "Q⁽ʰ⁾ K⁽ʰ⁾ᵀ", "per-head scores", "head", "query", "key", batched=True),
    "masked_scores": term("ω⁽ʰ⁾_masked", "ω⁽ʰ⁾, −∞ above the diagonal", "per-head masked scores",
                          "head", "query", "key", batched=True, masked=True),
    "attn_weights": term("A⁽ʰ⁾", "softmax(ω⁽ʰ⁾_masked / √hd)", "per-head attention weights",
                         "head", "query", "key", batched=True, masked=True, colours="prob"),
    "context_heads": term("Z⁽ʰ⁾", "A⁽ʰ⁾ V⁽ʰ⁾", "per-head context vectors", "head", "token", "hd", batched=True),
    "context_concat": term("Z_cat", "Z⁽ʰ⁾.transpose.view(T, d_out)", "heads merged back side by side",
                           "token", "out", batched=True, head_columns=True),
    "W_out": term("W_o", "W_o", "output projection weights (out_proj.weight.T)", "out", "out"),
    "b_out": term("b_o", "b_o", "output projection bias", "out"),
    "context_vecs": term("Z", "Z = Z_cat W_o + b_o", "fused output after out_proj", "token", "out", batched=True),
}

WRAPPER_START = "# --- MultiHeadAttentionWrapper: independent causal heads ---"
FUSED_START = "# --- MultiHeadAttention: fused projections, split into heads ---"


def causal_head(batch: torch.Tensor, qkv: dict[str, Projection], mask: torch.Tensor):
    """One CausalAttention head in eval mode (no dropout): its weights (b, T, T) and output (b, T, hd)."""
    ops = Ops()
    queries = ops.project(batch, qkv["query"])                               # (b, T, d_in) -> (b, T, hd)
    keys = ops.project(batch, qkv["key"])                                    # (b, T, d_in) -> (b, T, hd)
    values = ops.project(batch, qkv["value"])                                # (b, T, d_in) -> (b, T, hd)
    attn_weights = attention_weights(queries, keys, mask, ops)               # (b, T, T)
    return attn_weights, attn_weights @ values                               # (b, T, T), (b, T, hd)


def stack_heads(heads: list[dict[str, Projection]]) -> dict[str, torch.Tensor]:
    """The wrapper's per-head weights as (h, d_in, hd) stacks (and biases as (h, hd)), by name."""
    out = {f"wrapper_W_{role}": torch.stack([h[role].W for h in heads]) for role in ROLES}   # (h, d_in, hd)
    out.update({f"wrapper_b_{role}": torch.stack([h[role].b for h in heads])                  # (h, hd)
                for role in ROLES if heads[0][role].b is not None})
    return out


def wrapper(batch: torch.Tensor, heads: list[dict[str, Projection]], mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """MultiHeadAttentionWrapper: [CausalAttention(d_in, hd) for _ in range(h)], outputs concatenated."""
    ops = Ops()
    ops.named.update(stack_heads(heads))
    per_head = [causal_head(batch, qkv, mask) for qkv in heads]              # h × ((b, T, T), (b, T, hd))
    ops.record("wrapper_attn_weights", torch.stack([w for w, _ in per_head], dim=1))   # h × (b, T, T) -> (b, h, T, T)
    ops.record("wrapper_context_vecs", torch.cat([z for _, z in per_head], dim=-1))    # h × (b, T, hd) -> (b, T, d_out)
    return ops.named


def attention(batch: torch.Tensor, qkv: dict, out_proj, num_heads: int, mask: torch.Tensor,
              ops: Ops) -> dict[str, torch.Tensor]:
    """MultiHeadAttention.forward (section 3.6.2): this stage's, stage 5's (a MiniLM layer, no causal
    mask) and the Train model's (nn.Linear layers, dropout), each with its own weights and ``ops``.
    batch: (b, num_tokens, d_in); qkv, out_proj: what ``ops.project`` takes; mask: (T, T), 1 = may
    attend. Records each intermediate; returns ``ops.named``."""
    b, num_tokens, _ = batch.shape

    def split(y: torch.Tensor) -> torch.Tensor:
        # (b, num_tokens, d_out) -> (b, num_tokens, num_heads, head_dim) -> (b, num_heads, num_tokens, head_dim)
        return y.view(b, num_tokens, num_heads, -1).transpose(1, 2)

    queries = ops.record("queries", split(ops.project(batch, qkv["query"], "query")))   # (b, h, T, hd)
    keys = ops.record("keys", split(ops.project(batch, qkv["key"], "key")))             # (b, h, T, hd)
    # attn_scores = Q Kᵀ, masked_scores (−∞ where the mask is 0), attn_weights = softmax(masked / √hd)
    attn_weights = attention_weights(queries, keys, mask, ops)                            # (b, h, T, T)

    def rest() -> None:
        values = ops.record("values", split(ops.project(batch, qkv["value"], "value")))  # (b, h, T, hd)
        context_heads = ops.record("context_heads", ops.mix(ops.dropout(attn_weights), values))   # (b, h, T, hd)
        # (b, h, T, hd) -> (b, T, h, hd) -> (b, T, d_out)
        context_concat = ops.record("context_concat",
                                    context_heads.transpose(1, 2).contiguous().view(b, num_tokens, -1))
        ops.record("context_vecs", ops.project(context_concat, out_proj))                # (b, T, d_out)
    ops.later(rest)                   # the engine may defer V and what it makes until the weights are drawn
    return ops.named


def fused(batch: torch.Tensor, qkv: dict[str, Projection], out_proj: Projection, num_heads: int,
          mask: torch.Tensor, ops: Ops | None = None) -> dict[str, torch.Tensor]:
    """This stage's MultiHeadAttention (no dropout): its weights and ``attention``'s intermediates."""
    ops = ops or Ops()
    ops.named.update(weights(qkv), W_out=out_proj.W, b_out=out_proj.b)
    return attention(batch, qkv, out_proj, num_heads, mask, ops)


def forward(batch: torch.Tensor, heads: list[dict[str, Projection]], qkv: dict[str, Projection],
            out_proj: Projection, num_heads: int, mask: torch.Tensor, ops: Ops | None = None) -> dict[str, torch.Tensor]:
    """Both implementations of section 3.6 on the same batch: the wrapper's terms, then the fused ones."""
    return {**wrapper(batch, heads, mask), **fused(batch, qkv, out_proj, num_heads, mask, ops)}


def code(cfg) -> list[tuple[str | None, str]]:
    """The batch and mask; the wrapper's heads drawn, ``causal_head`` written out and ``wrapper``'s
    lines; the fused weights' draw and ``fused``'s lines (core.stages.lines reads them all)."""
    values = qkv_values(cfg)
    each = {k: (k if v else None) for k, v in values.items()}     # causal_head's qkv: one head's, as it is
    heads = [f"'{r}': Projection(W_{r}, {f'b_{r}' if cfg.qkv_bias else 'None'})" for r in ROLES]
    c: list[tuple[str | None, str]] = [
        (None, batch_line(cfg)), (None, "T = batch.shape[1]"), (None, f"num_heads = {cfg.num_heads}"),
        ("mask", f"mask = {mask_line(cfg)}"),
        (None, WRAPPER_START),
        (None, "from collections import namedtuple"),
        (None, 'Projection = namedtuple("Projection", "W b")  # x @ W + b (b: None, no bias)'),
        (None, f"torch.manual_seed({cfg.seed})"),
        (None, "heads = []"),
        (None, "for _ in range(num_heads):")]
    c += [(None, "    " + line) for line in draw_lines(cfg, cfg.head_dim)[1:]]
    c += [(None, f"    heads.append({{{', '.join(heads[:2])},"), (None, f"                  {heads[2]}}})")]
    c += [(f"wrapper_{k}_{r}", f"wrapper_{k}_{r} = torch.stack([qkv['{r}'].{k} for qkv in heads])"
           + ("  # (h, d_in, hd)" if k == "W" else "  # (h, hd)"))
          for k in ("W", "b") if k == "W" or cfg.qkv_bias for r in ROLES]
    c += definition(causal_head, each) + lines(wrapper)
    c += [(None, FUSED_START)] + weight_lines(cfg)     # each draw line tagged with the weight it makes
    c += [(None, "out_proj = nn.Linear(d_out, d_out)"),
          ("W_out", f"W_out = out_proj.weight.T.detach(){widen(cfg)}"),
          ("b_out", f"b_out = out_proj.bias.detach(){widen(cfg)}")]
    return c + lines(fused, values={**values, "out_proj.W": "W_out", "out_proj.b": "b_out"})


def explain(c):
    tok, i, j, name, lead, cfg = c.tok, c.i, c.j, c.name, c.lead, c.cfg
    hd = cfg.head_dim
    if c.is_weight():
        return c.weight()
    if name in ("queries", "keys", "values"):
        return c.projection(c.h * hd + j)
    if name == "attn_scores":
        return c.score("multihead", lead)
    if name == "masked_scores":
        return c.masked()
    if name == "attn_weights":
        return c.masked_softmax(hd)
    if name == "context_heads":
        return c.mix(c.get("multihead", "attn_weights", c.b, c.h)[i], c.get("multihead", "values", c.b, c.h)[:, j],
                     f"v{c.head}", c.source("multihead", "attn_weights", lead, (i,), None),
                     c.source("multihead", "values", lead, None, (j,)))
    if name == "context_concat":
        src_h, col = divmod(j, hd)
        value = float(c.get("multihead", "context_heads", c.b, src_h)[i, col])
        lead_src = ((c.b,) if c.b is not None else ()) + (src_h,)
        return c.done("concat", f"concat[{tok[i]}, {j}] = context_heads[head {src_h}][{tok[i]}, {col}]",
                      [f"column {j} = head {src_h}'s dim {col} (view/transpose puts the heads side by side)"], value,
                      [c.source("multihead", "context_heads", lead_src, (i,), (col,))])
    if name == "context_vecs":
        cat = c.get("multihead", "context_concat", c.b)[i]
        W = c.get("multihead", "W_out")[:, j]
        products, total, lines = c.dot(cat, W, f"concat[{tok[i]}, :]", f"W_out[:, {j}]", ("dims",))
        bias = float(c.get("multihead", "b_out")[j])
        total += bias
        lines += (f"+ out_proj bias b_out[{j}] = {c.f(bias)} → {c.f(total)}",)
        return c.done("dot", f"z[{tok[i]}, {j}] = concat[{tok[i]}, :] · W_out[:, {j}] + b_out[{j}]", lines, total,
                      [c.source("multihead", "context_concat", lead, (i,), None),
                       c.source("multihead", "W_out", (), None, (j,)), c.source("multihead", "b_out", (), None, (j,))],
                      products)
    if name == "wrapper_context_vecs":
        src_h, col = divmod(j, hd)
        return c.done("concat", f"wrapper[{tok[i]}, {j}] = head {src_h}'s CausalAttention output, dim {col}",
                      [f"the wrapper runs {cfg.num_heads} independent heads and concatenates their outputs",
                       f"column {j} comes from head {src_h} (its own W_query/W_key/W_value)"], c.value,
                      [c.source("multihead", "wrapper_W_query", (src_h,), None, (col,))])
    if name == "wrapper_attn_weights":
        return c.done("softmax", f"wrapper head {c.h}: A[{tok[i]}, {tok[j]}] = {c.f(c.value)}",
                      [f"head {c.h} is a CausalAttention(d_in, {hd}) with its own W_query/W_key/W_value: "
                       f"softmax of its masked scores / √{hd}"], c.value,
                      [c.source("multihead", "wrapper_W_query", (c.h,), None, None)])
    return None


STAGE = Stage("multihead", "Multi-head attention", "3.6", TERMS, forward, code, explain, batched=True)
