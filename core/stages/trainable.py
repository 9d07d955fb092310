"""Section 3.4: self-attention with trainable weights (SelfAttention_v1 / SelfAttention_v2).

Three projections Q = X W_q, K = X W_k, V = X W_v; scores Q Kᵀ; scaled by 1/√d_k;
softmax; context vectors A V.
"""
from __future__ import annotations

import math

import torch

from core.stages.lines import lines
from core.stages.ops import Ops
from core.stages.schema import Stage, term
from core.weights import ROLES, Projection

TERMS = {
    "W_query": term("W_q", "W_q", "query projection weights", "in", "out"),
    "W_key": term("W_k", "W_k", "key projection weights", "in", "out"),
    "W_value": term("W_v", "W_v", "value projection weights", "in", "out"),
    "b_query": term("b_q", "b_q", "query projection bias", "out", optional=True),
    "b_key": term("b_k", "b_k", "key projection bias", "out", optional=True),
    "b_value": term("b_v", "b_v", "value projection bias", "out", optional=True),
    "queries": term("Q", "Q = X W_q", "one query vector per token", "token", "out"),
    "keys": term("K", "K = X W_k", "one key vector per token", "token", "out"),
    "values": term("V", "V = X W_v", "one value vector per token", "token", "out"),
    "attn_scores": term("ω", "ω = Q Kᵀ", "query · key for every pair of tokens", "query", "key"),
    "scaled_scores": term("ω/√d_k", "ω / √d_k", "scores scaled by 1/√d_k to keep softmax from saturating",
                          "query", "key"),
    "attn_weights": term("A", "A = softmax(ω/√d_k)", "softmax of each row of scaled scores", "query", "key",
                         colours="prob"),
    "context_vecs": term("Z", "Z = A V", "attention-weighted sum of value vectors", "token", "out"),
}


def weights(qkv: dict[str, Projection], prefix: str = "") -> dict[str, torch.Tensor]:
    """W_query, W_key, W_value (then b_query, b_key, b_value when there are biases), by name."""
    out = {f"{prefix}W_{role}": qkv[role].W for role in ROLES}
    out.update({f"{prefix}b_{role}": qkv[role].b for role in ROLES if qkv[role].b is not None})
    return out


def forward(inputs: torch.Tensor, qkv: dict[str, Projection], ops: Ops | None = None) -> dict[str, torch.Tensor]:
    """inputs: (num_tokens, d_in); qkv: W_query, W_key, W_value (+ biases) -> section 3.4's intermediates."""
    ops = ops or Ops()
    record = ops.record
    ops.named.update(weights(qkv))
    queries = record("queries", ops.project(inputs, qkv["query"], "query"))   # (T, d_in) -> (T, d_out)
    keys = record("keys", ops.project(inputs, qkv["key"], "key"))             # (T, d_in) -> (T, d_out)
    values = record("values", ops.project(inputs, qkv["value"], "value"))     # (T, d_in) -> (T, d_out)
    attn_scores = record("attn_scores", queries @ keys.T)                    # (T, T)
    scaled_scores = record("scaled_scores", attn_scores / keys.shape[-1] ** 0.5)   # (T, T)
    attn_weights = record("attn_weights", torch.softmax(scaled_scores, dim=-1))    # (T, T)
    record("context_vecs", attn_weights @ values)                            # (T, d_out)
    return ops.named


def weights_of(attn_scores: torch.Tensor, d_k: int, scaled: bool) -> torch.Tensor:
    """The attention weights of the scores, ÷ √d_k (as ``forward`` does) or not (why 1/√d_k: the
    scaling view's toggle), in float64. attn_scores: (T, T) -> (T, T)."""
    scores = attn_scores.double()
    return torch.softmax(scores / math.sqrt(d_k) if scaled else scores, dim=-1)


def peakedness(queries: torch.Tensor, keys: torch.Tensor, scaled: bool) -> tuple[float, float]:
    """How peaked this stage's softmax is, for core.scaling's chart of why 1/√d_k: the mean over
    query rows of the largest weight and the mean row entropy (nats), with the scores scaled
    (÷ √d_k, as ``forward`` does) or not. queries, keys: (T, d_k)."""
    w = weights_of(queries @ keys.T, keys.shape[-1], scaled)                # (T, T)
    ent = -(w * torch.log(w.clamp_min(1e-300))).sum(dim=-1)                  # (T,)
    return float(w.max(dim=-1).values.mean()), float(ent.mean())


def widen(cfg) -> str:
    """float64 traces draw the book's float32 weights, then widen them."""
    return ".double()" if cfg.dtype == "float64" else ""


def draw_lines(cfg, d_out, prefix: str = "") -> list[str]:
    """Lines that draw W_query/W_key/W_value (and biases) as the book does, after manual_seed."""
    to = widen(cfg)
    lines = [f"torch.manual_seed({cfg.seed})"]
    for role in ROLES:
        if cfg.init == "rand":
            lines.append(f"{prefix}W_{role} = torch.rand(d_in, {d_out}){to}")
            if cfg.qkv_bias:
                lines.append(f"{prefix}b_{role} = torch.rand({d_out}){to}")
        else:
            lines.append(f"_layer = nn.Linear(d_in, {d_out}, bias={cfg.qkv_bias})")
            lines.append(f"{prefix}W_{role} = _layer.weight.T.detach(){to}")
            if cfg.qkv_bias:
                lines.append(f"{prefix}b_{role} = _layer.bias.detach(){to}")
    return lines


def qkv_values(cfg, prefix: str = "") -> dict[str, str | None]:
    """How the code panel writes the forward's ``qkv[role].W`` / ``.b``: the book's W_query, b_query
    (None without biases, so ``project`` shows ``x @ W_query``). core.stages.lines."""
    return {f'qkv["{role}"].{k}': (f"{prefix}{k}_{role}" if k == "W" or cfg.qkv_bias else None)
            for role in ROLES for k in ("W", "b")}


def weight_lines(cfg) -> list[tuple[str | None, str]]:
    """The draw, each line tagged with the weight it makes (the line a weight highlights)."""
    made = {f"{w}_{role} = ": f"{w}_{role}" for role in ROLES for w in ("W", "b")}
    return [(next((n for head, n in made.items() if line.startswith(head)), None), line)
            for line in draw_lines(cfg, cfg.d_out)]


def code(cfg) -> list[tuple[str | None, str]]:
    """The weights' draw, then the forward's own lines (core.stages.lines)."""
    return weight_lines(cfg) + lines(forward, values=qkv_values(cfg))


def explain(c):
    tok, i, j, name = c.tok, c.i, c.j, c.name
    if c.is_weight():
        return c.weight()
    if name in ("queries", "keys", "values"):
        return c.projection(j)
    if name == "attn_scores":
        return c.score("trainable", ())
    if name == "scaled_scores":
        d_k = c.cfg.d_out
        raw = float(c.get("trainable", "attn_scores")[i, j])
        return c.done("scale", f"scaled[{tok[i]}, {tok[j]}] = score / √d_k",
                      [f"{c.f(raw)} / √{d_k} = {c.f(raw)} / {c.f(math.sqrt(d_k))} = {c.f(raw / math.sqrt(d_k))}"],
                      raw / math.sqrt(d_k), [c.source("trainable", "attn_scores", (), (i,), (j,))])
    if name == "attn_weights":
        value, lines = c.softmax(c.get("trainable", "scaled_scores")[i], j, "scaled_scores")
        return c.done("softmax", f"softmax(scaled_scores[{tok[i]}, :])[{tok[j]}]", lines, value,
                      [c.source("trainable", "scaled_scores", (), (i,), None)])
    if name == "context_vecs":
        return c.mix(c.get("trainable", "attn_weights")[i], c.get("trainable", "values")[:, j], "v",
                     c.source("trainable", "attn_weights", (), (i,), None),
                     c.source("trainable", "values", (), None, (j,)))
    return None


STAGE = Stage("trainable", "Self-attention with trainable weights", "3.4", TERMS, forward, code, explain)
