"""Where does this number come from? The arithmetic behind any cell of the trace.

``explain_cell(trace, stage, name, index)`` returns the cell's value, the formula with the
row/column labels filled in, the actual terms (e.g. the query row, the key row, their
element-wise products and the sum), the value recomputed from those terms (it equals the
cell), and the cells of other intermediates that feed it (for highlighting). Pure numpy on
the trace's CPU copies; nothing is recomputed by torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.trace import Trace


@dataclass(frozen=True)
class Source:
    """Cells of another intermediate that feed the explained one."""

    stage: str
    name: str
    lead: tuple[int, ...]              # batch/head indices of the slice
    rows: tuple[int, ...] | None       # None: every row
    cols: tuple[int, ...] | None       # None: every column


@dataclass(frozen=True)
class Explanation:
    stage: str
    name: str
    index: tuple[int, ...]
    value: float
    kind: str                                   # "dot", "softmax", "ratio", "scale", "given", …
    formula: str                                # symbolic, with labels
    lines: tuple[str, ...]                      # the arithmetic, with numbers
    products: tuple[tuple[float, float, float], ...] = ()   # (a, b, a·b) for dot products
    recomputed: float = float("nan")            # the value rebuilt from the terms shown
    sources: tuple[Source, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        return "\n".join((self.formula,) + self.lines)


def _f(v: float) -> str:
    if math.isinf(v):
        return "−∞" if v < 0 else "∞"
    return f"{v:.4f}"


def _dot_lines(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str, dims: tuple[str, ...]):
    prods = a * b
    products = tuple((float(x), float(y), float(p)) for x, y, p in zip(a, b, prods))
    shown = [f"{_f(x)}×{_f(y)}" for x, y, _ in products[:8]] + (["…"] if len(products) > 8 else [])
    total = float(prods.sum(dtype=np.float64))
    lines = (
        f"{a_name} = [{', '.join(_f(v) for v in a[:8])}{', …' if len(a) > 8 else ''}]",
        f"{b_name} = [{', '.join(_f(v) for v in b[:8])}{', …' if len(b) > 8 else ''}]",
        "products: " + " + ".join(shown),
        "          = " + " + ".join(_f(p) for _, _, p in products[:8]) + (" + …" if len(products) > 8 else ""),
        f"sum over {len(products)} {dims[0] if dims else 'dims'} = {_f(total)}",
    )
    return products, total, lines


def _ratio(a: float, b: float) -> float:
    """a / b as torch computes it: ±inf or nan for a zero divisor, never ZeroDivisionError."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


def _softmax_lines(row: np.ndarray, j: int, labels, what: str):
    finite = np.isfinite(row)
    m = row[finite].max() if finite.any() else 0.0
    exps = np.where(finite, np.exp(np.where(finite, row - m, 0.0)), 0.0)
    # exp(x − max) / Σ exp(x − max) = exp(x) / Σ exp(x): shown unshifted where it does not overflow
    shift = 0.0 if np.all(np.abs(row[finite]) < 80) else m
    shown = np.where(finite, np.exp(np.where(finite, row - shift, 0.0)), 0.0)
    total = float(shown.sum())
    value = float(shown[j] / total)
    parts = [f"exp({_f(v)})={_f(e)}" if np.isfinite(v) else f"exp(−∞)=0 ({lab}: masked)"
             for v, e, lab in zip(row[:8], shown[:8], labels[:8])]
    lines = (
        f"{what} row = [{', '.join(_f(v) for v in row[:8])}{', …' if len(row) > 8 else ''}]",
        "exponentials: " + ", ".join(parts) + (", …" if len(row) > 8 else ""),
        f"sum of exponentials = {_f(total)}" + (f" (each shifted by the row max {_f(shift)})" if shift else ""),
        f"weight = {_f(float(shown[j]))} / {_f(total)} = {_f(value)}",
    )
    del exps
    return value, lines


def explain_cell(trace: Trace, stage: str, name: str, index) -> Explanation:
    """Explain one cell; ``index`` is the full index (leading batch/head indices included)."""
    item = trace[stage, name]
    index = tuple(int(i) for i in index)
    arr = item.numpy()
    value = float(arr[index])
    axes = item.axes
    lead = index[:-2] if len(index) >= 2 else ()
    cfg = trace.config
    tok = trace.labels
    lead_axes = axes[:len(lead)]
    b = lead[lead_axes.index("batch")] if "batch" in lead_axes else None
    h = lead[lead_axes.index("head")] if "head" in lead_axes else None
    i, j = (index[-2], index[-1]) if len(index) >= 2 else (None, index[-1])

    def get(st, nm, bi=None, hi=None):
        it = trace[st, nm]
        a = it.numpy()
        sel = []
        for ax in it.axes[:it.lead_axes()]:
            sel.append(bi if ax == "batch" else hi)
        return a[tuple(sel)] if sel else a

    def done(kind, formula, lines, recomputed, sources=(), products=()):
        return Explanation(stage, name, index, value, kind, formula, tuple(lines), tuple(products),
                           float(recomputed), tuple(sources))

    head = f"⁽{h}⁾" if h is not None else ""
    key = (stage, name)
    # ---- given values --------------------------------------------------------------------------
    if name == "inputs":
        return done("given", f"x_{tok[i]}[{item.labels[-1][j]}] = {_f(value)}",
                    ["an embedding value: the input, not computed"], value)
    if name.startswith(("W_", "b_", "wrapper_W_", "wrapper_b_")):
        how = ("torch.rand" if cfg.init == "rand" else "nn.Linear's init") if name != "W_out" and name != "b_out" \
            else "nn.Linear's init (out_proj)"
        return done("given", f"{name}{list(index)} = {_f(value)}",
                    [f"a weight drawn by {how} after torch.manual_seed({cfg.seed}); learned in training"], value)
    if name == "mask":
        return done("mask", f"mask[{tok[i]}, {tok[j]}] = {int(value)}",
                    [f"{tok[i]} may attend to {tok[j]}" if value else f"{tok[j]} comes after {tok[i]}: hidden"], value)
    if name == "dropout_mask":
        return done("dropout", f"dropout_mask[{tok[i]}, {tok[j]}] = {int(value)}",
                    [("kept" if value else "dropped") + f": drawn with p = {cfg.dropout} after "
                     f"torch.manual_seed({cfg.dropout_seed})"], value)
    # ---- projections: X W (+ b) ---------------------------------------------------------------
    if key in {("trainable", "queries"), ("trainable", "keys"), ("trainable", "values"),
               ("multihead", "queries"), ("multihead", "keys"), ("multihead", "values")}:
        role = {"queries": "query", "keys": "key", "values": "value"}[name]
        x = get("simplified", "inputs")[i]
        col = j if stage == "trainable" else h * cfg.head_dim + j
        W = trace[stage, f"W_{role}"].numpy()
        products, total, lines = _dot_lines(x, W[:, col], f"x_{tok[i]}", f"W_{role}[:, {col}]", ("input dims",))
        srcs = [Source("simplified", "inputs", (), (i,), None), Source(stage, f"W_{role}", (), None, (col,))]
        if cfg.qkv_bias:
            bias = float(trace[stage, f"b_{role}"].numpy()[col])
            total += bias
            lines += (f"+ bias b_{role}[{col}] = {_f(bias)} → {_f(total)}",)
            srcs.append(Source(stage, f"b_{role}", (), None, (col,)))
        formula = f"{name}{head}[{tok[i]}, {item.labels[-1][j]}] = x_{tok[i]} · W_{role}[:, {col}]"
        if stage == "multihead":
            lines = (f"head {h} uses columns {h * cfg.head_dim}…{(h + 1) * cfg.head_dim - 1} of W_{role}",) + lines
        return done("dot", formula, lines, total, srcs, products)
    # ---- scores: q · k ---------------------------------------------------------------------------
    if name == "attn_scores":
        if stage == "simplified":
            x = get("simplified", "inputs")
            products, total, lines = _dot_lines(x[i], x[j], f"x_{tok[i]}", f"x_{tok[j]}", ("input dims",))
            srcs = [Source("simplified", "inputs", (), (i, j), None)]
            return done("dot", f"ω[{tok[i]}, {tok[j]}] = x_{tok[i]} · x_{tok[j]}", lines, total, srcs, products)
        src_stage = "multihead" if stage == "multihead" else "trainable"
        q = get(src_stage, "queries", b, h)
        k = get(src_stage, "keys", b, h)
        products, total, lines = _dot_lines(q[i], k[j], f"q{head}_{tok[i]}", f"k{head}_{tok[j]}", ("dims",))
        lead_src = lead if src_stage == "multihead" else ()
        srcs = [Source(src_stage, "queries", lead_src, (i,), None), Source(src_stage, "keys", lead_src, (j,), None)]
        return done("dot", f"score{head}[{tok[i]}, {tok[j]}] = q{head}_{tok[i]} · k{head}_{tok[j]}", lines, total,
                    srcs, products)
    if name == "scaled_scores":
        d_k = cfg.d_out
        raw = float(get("trainable", "attn_scores")[i, j])
        return done("scale", f"scaled[{tok[i]}, {tok[j]}] = score / √d_k",
                    [f"{_f(raw)} / √{d_k} = {_f(raw)} / {_f(math.sqrt(d_k))} = {_f(raw / math.sqrt(d_k))}"],
                    raw / math.sqrt(d_k), [Source("trainable", "attn_scores", (), (i,), (j,))])
    if name == "masked_scores":
        raw = float(get(stage, "attn_scores", b, h)[i, j])
        hidden = bool(get("causal", "mask")[i, j] == 0)
        lines = [f"{tok[j]} comes after {tok[i]}: set to −∞ so softmax gives it weight 0"] if hidden else \
            [f"{tok[j]} is not in the future of {tok[i]}: the score is kept, {_f(raw)}"]
        return done("mask", f"masked{head}[{tok[i]}, {tok[j]}]", lines, float("-inf") if hidden else raw,
                    [Source(stage, "attn_scores", lead, (i,), (j,)), Source("causal", "mask", (), (i,), (j,))])
    # ---- softmax weights -------------------------------------------------------------------------
    if name == "attn_weights_sumnorm":
        row = get("simplified", "attn_scores")[i]
        total = float(row.sum(dtype=np.float64))
        ratio = _ratio(float(row[j]), total)
        return done("ratio", f"ω[{tok[i]}, {tok[j]}] / Σ ω[{tok[i]}, :]",
                    [f"row sum = {' + '.join(_f(v) for v in row[:8])}{' + …' if len(row) > 8 else ''} = {_f(total)}",
                     f"{_f(float(row[j]))} / {_f(total)} = {_f(ratio)}"]
                    + (["the row sums to 0: the naive normalisation is undefined here (softmax is not)"] if total == 0 else []),
                    ratio, [Source("simplified", "attn_scores", (), (i,), None)])
    if name == "attn_weights" and stage in ("simplified", "trainable"):
        src = "attn_scores" if stage == "simplified" else "scaled_scores"
        row = get(stage, src)[i]
        v, lines = _softmax_lines(row, j, tok, src)
        return done("softmax", f"softmax({src}[{tok[i]}, :])[{tok[j]}]", lines, v, [Source(stage, src, (), (i,), None)])
    if name == "attn_weights":  # causal / multihead: softmax(masked / √d_k)
        d_k = cfg.head_dim if stage == "multihead" else cfg.d_out
        row = get(stage, "masked_scores", b, h)[i] / math.sqrt(d_k)
        v, lines = _softmax_lines(row, j, tok, f"masked scores / √{d_k}")
        return done("softmax", f"softmax(masked{head}[{tok[i]}, :] / √{d_k})[{tok[j]}]", lines, v,
                    [Source(stage, "masked_scores", lead, (i,), None)])
    if name == "masked_simple":
        w = float(get("trainable", "attn_weights")[i, j])
        m = float(get("causal", "mask")[i, j])
        return done("mask", f"softmax(scores/√d_k)[{tok[i]}, {tok[j]}] × mask",
                    [f"{_f(w)} × {int(m)} = {_f(w * m)}"], w * m,
                    [Source("trainable", "attn_weights", (), (i,), (j,)), Source("causal", "mask", (), (i,), (j,))])
    if name == "renormalized_weights":
        row = get("causal", "masked_simple", b)[i]
        total = float(row.sum(dtype=np.float64))
        info = np.finfo(row.dtype)
        if row.max() < info.tiny / info.eps:  # kept weights underflowed: the trace took approach B's row (steps.renormalize)
            scaled = get("causal", "masked_scores", b)[i] / math.sqrt(cfg.d_out)
            v, lines = _softmax_lines(scaled, j, tok, f"masked scores / √{cfg.d_out}")
            return done("softmax", f"softmax(masked[{tok[i]}, :] / √{cfg.d_out})[{tok[j]}]",
                        [f"softmax underflowed every kept weight of this row to 0 (row sum {_f(total)}: the scores "
                         "lie far apart), so (A ⊙ M) / row sum is 0/0; shown is approach B's weight, the same number",
                         *lines], v, [Source("causal", "masked_scores", lead, (i,), None)])
        return done("ratio", f"(A ⊙ M)[{tok[i]}, {tok[j]}] / row sum",
                    [f"row sum = {_f(total)} (the future's weight is gone, so rows no longer sum to 1)",
                     f"{_f(float(row[j]))} / {_f(total)} = {_f(float(row[j]) / total)}"],
                    float(row[j]) / total, [Source("causal", "masked_simple", lead, (i,), None)])
    if name == "dropped_weights":
        w = float(get("causal", "attn_weights", b)[i, j])
        keep = float(get("causal", "dropout_mask", b)[i, j])
        p = cfg.dropout
        return done("dropout", f"A[{tok[i]}, {tok[j]}] × D / (1 − p)",
                    [f"{_f(w)} × {int(keep)} / (1 − {p}) = {_f(w * keep / (1 - p))}"], w * keep / (1 - p),
                    [Source("causal", "attn_weights", lead, (i,), (j,)), Source("causal", "dropout_mask", lead, (i,), (j,))])
    # ---- context vectors: weights row × value column ---------------------------------------------
    if name in ("context_vecs", "context_heads") and not (stage == "multihead" and name == "context_vecs"):
        if stage == "simplified":
            w, vals, vname, wsrc, vsrc = get(stage, "attn_weights")[i], get(stage, "inputs")[:, j], "x", \
                Source(stage, "attn_weights", (), (i,), None), Source(stage, "inputs", (), None, (j,))
        elif stage == "trainable":
            w, vals, vname = get(stage, "attn_weights")[i], get(stage, "values")[:, j], "v"
            wsrc, vsrc = Source(stage, "attn_weights", (), (i,), None), Source(stage, "values", (), None, (j,))
        elif stage == "causal":
            w, vals, vname = get(stage, "dropped_weights", b)[i], get("trainable", "values")[:, j], "v"
            wsrc, vsrc = Source(stage, "dropped_weights", lead, (i,), None), Source("trainable", "values", (), None, (j,))
        else:
            w, vals, vname = get(stage, "attn_weights", b, h)[i], get(stage, "values", b, h)[:, j], f"v{head}"
            wsrc, vsrc = Source(stage, "attn_weights", lead, (i,), None), Source(stage, "values", lead, None, (j,))
        products, total, lines = _dot_lines(w, vals, f"weights[{tok[i]}, :]", f"{vname}[:, {item.labels[-1][j]}]",
                                            ("tokens",))
        return done("dot", f"z{head}_{tok[i]}[{item.labels[-1][j]}] = Σ_j weight[{tok[i]}, j] · {vname}_j", lines,
                    total, [wsrc, vsrc], products)
    if name == "context_concat":
        hd = cfg.head_dim
        src_h, c = divmod(j, hd)
        v = float(get("multihead", "context_heads", b, src_h)[i, c])
        lead_src = ((b,) if b is not None else ()) + (src_h,)
        return done("concat", f"concat[{tok[i]}, {j}] = context_heads[head {src_h}][{tok[i]}, {c}]",
                    [f"column {j} = head {src_h}'s dim {c} (view/transpose puts the heads side by side)"], v,
                    [Source("multihead", "context_heads", lead_src, (i,), (c,))])
    if key == ("multihead", "context_vecs"):
        cat = get("multihead", "context_concat", b)[i]
        W = trace["multihead", "W_out"].numpy()[:, j]
        products, total, lines = _dot_lines(cat, W, f"concat[{tok[i]}, :]", f"W_out[:, {j}]", ("dims",))
        bias = float(trace["multihead", "b_out"].numpy()[j])
        total += bias
        lines += (f"+ out_proj bias b_out[{j}] = {_f(bias)} → {_f(total)}",)
        return done("dot", f"z[{tok[i]}, {j}] = concat[{tok[i]}, :] · W_out[:, {j}] + b_out[{j}]", lines, total,
                    [Source("multihead", "context_concat", lead, (i,), None), Source("multihead", "W_out", (), None, (j,)),
                     Source("multihead", "b_out", (), None, (j,))], products)
    if name == "wrapper_context_vecs":
        hd = cfg.head_dim
        src_h, c = divmod(j, hd)
        return done("concat", f"wrapper[{tok[i]}, {j}] = head {src_h}'s CausalAttention output, dim {c}",
                    [f"the wrapper runs {cfg.num_heads} independent heads and concatenates their outputs",
                     f"column {j} comes from head {src_h} (its own W_query/W_key/W_value)"], value,
                    [Source("multihead", "wrapper_W_query", (src_h,), None, (c,))])
    return done("value", f"{name}{list(index)} = {_f(value)}", [], value)
