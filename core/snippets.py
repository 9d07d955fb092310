"""The torch code beside the math: the book-style lines behind every intermediate.

``stage_code(config, stage)`` lists (name, line) pairs in the order the chapter writes them,
so a view can show the lines and highlight the one that produces the shown matrix.
``snippet(trace, stage, name)`` returns a runnable script (torch only) that rebuilds the
inputs, draws the weights as the book does and prints that intermediate; its numbers equal
the trace's.
"""
from __future__ import annotations

from core.config import AttentionConfig
from core.trace import Trace
from core.vocabulary import VOCABULARY

ROLES = ("query", "key", "value")
WRAPPER_START = "# --- MultiHeadAttentionWrapper: independent causal heads ---"
FUSED_START = "# --- MultiHeadAttention: fused projections, split into heads ---"
# Longest inputs written into a snippet literally (beyond: a note, and the first rows).
MAX_LITERAL_TOKENS = 256


def _draw_lines(cfg: AttentionConfig, d_out: int, prefix: str = "") -> list[str]:
    """Lines that draw W_query/W_key/W_value (and biases) as the book does, after manual_seed."""
    to = _to(cfg)
    lines = [f"torch.manual_seed({cfg.seed})"]
    for role in ROLES:
        if cfg.init == "rand":
            lines.append(f"{prefix}W_{role} = torch.rand(d_in, {d_out}){to}")
            if cfg.qkv_bias:
                lines.append(f"{prefix}b_{role} = torch.rand({d_out}){to}")
        else:
            lines.append(f"_layer = nn.Linear(d_in, {d_out}, bias={cfg.qkv_bias})")
            lines.append(f"{prefix}W_{role} = _layer.weight.T.detach(){to}" +
                         (f"; {prefix}b_{role} = _layer.bias.detach(){to}" if cfg.qkv_bias else ""))
    return lines


def _to(cfg: AttentionConfig) -> str:
    """float64 traces draw the book's float32 weights, then widen them."""
    return ".double()" if cfg.dtype == "float64" else ""


def _proj(role: str, src: str, cfg: AttentionConfig, prefix: str = "") -> str:
    return f"{src} @ {prefix}W_{role}" + (f" + {prefix}b_{role}" if cfg.qkv_bias else "")


def stage_code(cfg: AttentionConfig, stage: str) -> list[tuple[str | None, str]]:
    """(intermediate name or None, line) for one stage, book style."""
    c: list[tuple[str | None, str]] = []
    if stage == "simplified":
        c += [("attn_scores", "attn_scores = inputs @ inputs.T"),
              ("attn_weights_sumnorm", "attn_weights_sumnorm = attn_scores / attn_scores.sum(dim=-1, keepdim=True)"),
              ("attn_weights", "attn_weights = torch.softmax(attn_scores, dim=-1)"),
              ("context_vecs", "context_vecs = attn_weights @ inputs")]
        return c
    if stage in ("trainable", "causal"):
        c += [(None, line) for line in _draw_lines(cfg, cfg.d_out)]
        for role in ROLES:
            c.append((f"W_{role}", f"# W_{role}: drawn above"))
        if cfg.qkv_bias:
            c += [(f"b_{role}", f"# b_{role}: drawn above") for role in ROLES]
    if stage == "trainable":
        c += [("queries", f"queries = {_proj('query', 'inputs', cfg)}"),
              ("keys", f"keys = {_proj('key', 'inputs', cfg)}"),
              ("values", f"values = {_proj('value', 'inputs', cfg)}"),
              ("attn_scores", "attn_scores = queries @ keys.T"),
              ("scaled_scores", "scaled_scores = attn_scores / keys.shape[-1] ** 0.5"),
              ("attn_weights", "attn_weights = torch.softmax(scaled_scores, dim=-1)"),
              ("context_vecs", "context_vecs = attn_weights @ values")]
        return c
    tril = "torch.tril(torch.ones(T, T))" if cfg.causal else "torch.ones(T, T)  # causal off: attend everywhere"
    if stage == "causal":
        p = cfg.dropout
        c += [(None, f"batch = torch.stack([inputs] * {cfg.batch})  # (b, T, d_in)"),
              (None, f"queries = {_proj('query', 'batch', cfg)}"),
              (None, f"keys = {_proj('key', 'batch', cfg)}"),
              (None, f"values = {_proj('value', 'batch', cfg)}"),
              ("attn_scores", "attn_scores = queries @ keys.transpose(1, 2)"),
              (None, "T = attn_scores.shape[-1]"),
              ("mask", f"mask = {tril}"),
              ("masked_scores", "masked_scores = attn_scores.masked_fill(mask == 0, -torch.inf)"),
              ("attn_weights", "attn_weights = torch.softmax(masked_scores / keys.shape[-1] ** 0.5, dim=-1)"),
              ("masked_simple", "masked_simple = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1) * mask"),
              ("renormalized_weights", "renormalized_weights = masked_simple / masked_simple.sum(dim=-1, keepdim=True)"),
              (None, f"torch.manual_seed({cfg.dropout_seed})"),
              ("dropout_mask", "dropout_mask = torch.empty(attn_weights.shape).bernoulli_(1 - p)  # what nn.Dropout(p) draws"
               if p > 0 else "dropout_mask = torch.ones(attn_weights.shape)  # p = 0: nothing dropped"),
              ("dropped_weights", "dropped_weights = attn_weights * dropout_mask / (1 - p)"),
              ("context_vecs", "context_vecs = dropped_weights @ values")]
        return c
    # multihead: the wrapper, then the fused implementation
    h, hd = cfg.num_heads, cfg.head_dim
    c += [(None, f"batch = torch.stack([inputs] * {cfg.batch})  # (b, T, d_in)"),
          (None, "b, T, _ = batch.shape"),
          ("mask", f"mask = {tril}"),
          (None, WRAPPER_START),
          (None, f"torch.manual_seed({cfg.seed})"),
          (None, "heads = []"),
          (None, f"for _ in range({h}):")]
    for line in _draw_lines(cfg, hd)[1:]:
        c.append((None, "    " + line))
    c += [(None, "    heads.append((W_query, W_key, W_value" + (", b_query, b_key, b_value))" if cfg.qkv_bias else "))")),
          ("wrapper_W_query", "wrapper_W_query = torch.stack([hw[0] for hw in heads])  # (h, d_in, hd)"),
          ("wrapper_W_key", "wrapper_W_key = torch.stack([hw[1] for hw in heads])"),
          ("wrapper_W_value", "wrapper_W_value = torch.stack([hw[2] for hw in heads])")]
    if cfg.qkv_bias:
        c += [(f"wrapper_b_{r}", f"wrapper_b_{r} = torch.stack([hw[{3 + k}] for hw in heads])") for k, r in enumerate(ROLES)]
    bias = (lambda r, k: f" + hw[{3 + k}]") if cfg.qkv_bias else (lambda r, k: "")
    c += [(None, "def causal_head(hw):"),
          (None, f"    q, k, v = batch @ hw[0]{bias('query', 0)}, batch @ hw[1]{bias('key', 1)}, batch @ hw[2]{bias('value', 2)}"),
          (None, "    s = (q @ k.transpose(1, 2)).masked_fill(mask == 0, -torch.inf)"),
          (None, "    return torch.softmax(s / k.shape[-1] ** 0.5, dim=-1) @ v"),
          ("wrapper_context_vecs", "wrapper_context_vecs = torch.cat([causal_head(hw) for hw in heads], dim=-1)"),
          (None, FUSED_START)]
    c += [(None, line) for line in _draw_lines(cfg, cfg.d_out)]
    c += [(f"W_{r}", f"# W_{r}: drawn above") for r in ROLES]
    if cfg.qkv_bias:
        c += [(f"b_{r}", f"# b_{r}: drawn above") for r in ROLES]
    c += [(None, "out_proj = nn.Linear(d_out, d_out)"),
          ("W_out", f"W_out = out_proj.weight.T.detach(){_to(cfg)}"),
          ("b_out", f"b_out = out_proj.bias.detach(){_to(cfg)}"),
          ("queries", f"queries = ({_proj('query', 'batch', cfg)}).view(b, T, {h}, {hd}).transpose(1, 2)  # (b, h, T, hd)"),
          ("keys", f"keys = ({_proj('key', 'batch', cfg)}).view(b, T, {h}, {hd}).transpose(1, 2)"),
          ("values", f"values = ({_proj('value', 'batch', cfg)}).view(b, T, {h}, {hd}).transpose(1, 2)"),
          ("attn_scores", "attn_scores = queries @ keys.transpose(2, 3)  # (b, h, T, T)"),
          ("masked_scores", "masked_scores = attn_scores.masked_fill(mask == 0, -torch.inf)"),
          ("attn_weights", "attn_weights = torch.softmax(masked_scores / keys.shape[-1] ** 0.5, dim=-1)"),
          ("context_heads", "context_heads = attn_weights @ values  # (b, h, T, hd)"),
          ("context_concat", "context_concat = context_heads.transpose(1, 2).contiguous().view(b, T, d_out)"),
          ("context_vecs", "context_vecs = context_concat @ W_out + b_out")]
    return c


def _inputs_literal(trace: Trace) -> list[str]:
    arr = trace.inputs.array
    rows = arr[:MAX_LITERAL_TOKENS]
    body = [f"    [{', '.join(repr(float(v)) for v in row)}],  # {tok}"
            for row, tok in zip(rows, trace.tokens)]
    note = [] if len(arr) <= MAX_LITERAL_TOKENS else [f"# (first {MAX_LITERAL_TOKENS} of {len(arr)} tokens)"]
    return note + ["inputs = torch.tensor(["] + body + [f"], dtype={'torch.float64' if trace.config.dtype == 'float64' else 'torch.float32'})"]


def _literal(arr) -> str:
    """A float32 array as a torch.tensor literal (repr of each float32 value read back exactly)."""
    import numpy as np
    a = np.asarray(arr)
    if a.ndim == 1:
        body = ", ".join(repr(float(v)) for v in a)
    else:
        body = ", ".join("[" + ", ".join(repr(float(v)) for v in row) + "]" for row in a)
    return f"torch.tensor([{body}], dtype=torch.float32)"


def _given_fused_weights(trace: Trace, out: list[str]) -> list[str]:
    """The fused lines with the weights the trace was given (a trained layer's) written in,
    instead of drawn from the seed."""
    given = {f"W_{r}": trace["multihead", f"W_{r}"].numpy() for r in ROLES}
    given.update(W_out=trace["multihead", "W_out"].numpy(), b_out=trace["multihead", "b_out"].numpy())
    replaced = []
    for line in out:
        for wname, arr in given.items():
            if line == f"# {wname}: drawn above" or line.startswith(f"{wname} = out_proj."):
                line = f"{wname} = {_literal(arr)}  # given (a trained layer's)"
        replaced.append(line)
    return replaced


def snippet(trace: Trace, stage: str, name: str) -> str:
    """A runnable script that prints ``stage.name`` with the trace's numbers."""
    cfg = trace.config
    if name not in VOCABULARY[stage]:
        raise KeyError(f"{stage}.{name} is not in the vocabulary")
    lines = ["import torch", "from torch import nn", "",
             f"torch.set_printoptions(precision=8, sci_mode=False, linewidth=200)",
             f"# {stage}.{name}: {VOCABULARY[stage][name].formula}"]
    lines += _inputs_literal(trace)
    lines += [f"d_in, d_out, p = {cfg.d_in}, {cfg.d_out}, {cfg.dropout}"]
    code = [(None, "")] + stage_code(cfg, stage)
    if stage == "multihead":
        lines_only = [l for _, l in code]
        w0, f0 = lines_only.index(WRAPPER_START), lines_only.index(FUSED_START)
        # the snippet keeps only the implementation the intermediate belongs to
        code = code[:w0] + (code[w0:f0] if name.startswith("wrapper_") else code[f0:])
    out = []
    found = False
    for n, line in code:
        out.append(line)
        if n == name:
            found = True
            break
    if name == "inputs":
        out, found = [], True
    if not found:
        raise KeyError(f"{stage}.{name} has no line in the stage's code")
    if stage == "multihead" and getattr(trace, "multihead_given", False) and not name.startswith("wrapper_"):
        out = _given_fused_weights(trace, out)
    lines += out
    batched = VOCABULARY[stage][name].batched and cfg.batch == 1
    lines += [f"print({name}{'.squeeze(0)' if batched else ''})"]
    return "\n".join(lines) + "\n"
