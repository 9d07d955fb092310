"""Where does this number come from? The arithmetic behind any cell of the trace.

``explain_cell(trace, stage, name, index)`` runs the stage's rule (core/stages/*.py) and returns the cell's value, the formula with the
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


class Cell:
    """One clicked cell, and the arithmetic a stage's ``explain`` rule builds its answer from.

    The rules live in the stage files (core/stages/*.py, ``explain(cell)``); this class gives
    them the cell's position (i, j, batch b, head h), the trace's numbers (``get``) and the
    pieces of an explanation (``dot``, ``softmax``, ``mix``, ``done``…), so that a rule states
    only which numbers make the cell.
    """

    def __init__(self, trace: Trace, stage: str, name: str, index: tuple[int, ...]):
        self.trace, self.stage, self.name, self.index = trace, stage, name, index
        self.item = item = trace[stage, name]
        self.value = float(item.numpy()[index])
        self.cfg = trace.config
        self.tok = trace.labels
        self.lead = index[:-2] if len(index) >= 2 else ()
        lead_axes = item.axes[:len(self.lead)]
        self.b = self.lead[lead_axes.index("batch")] if "batch" in lead_axes else None
        self.h = self.lead[lead_axes.index("head")] if "head" in lead_axes else None
        self.i, self.j = (index[-2], index[-1]) if len(index) >= 2 else (None, index[-1])
        self.head = f"⁽{self.h}⁾" if self.h is not None else ""     # superscript for per-head names

    # ---- reading the trace -------------------------------------------------------------------
    def get(self, stage: str, name: str, bi: int | None = None, hi: int | None = None) -> np.ndarray:
        """The (2-D or 1-D) slice of ``stage.name`` for batch ``bi`` and head ``hi``."""
        it = self.trace[stage, name]
        a = it.numpy()
        sel = tuple(bi if ax == "batch" else hi for ax in it.axes[:it.lead_axes()])
        return a[sel] if sel else a

    def col_label(self, j: int) -> str:
        return self.item.labels[-1][j]

    # ---- building the answer -----------------------------------------------------------------
    f = staticmethod(_f)                 # a number as the inspector prints it
    ratio = staticmethod(_ratio)         # a / b as torch computes it (±inf, nan)

    @staticmethod
    def sum(row: np.ndarray) -> float:
        return float(row.sum(dtype=np.float64))

    @staticmethod
    def underflowed(row: np.ndarray) -> bool:
        """Whether softmax underflowed the row's largest kept weight (core.stages.causal.exact_rows)."""
        info = np.finfo(row.dtype)
        return bool(row.max() < info.tiny / info.eps)

    @staticmethod
    def source(stage, name, lead, rows, cols) -> Source:
        return Source(stage, name, tuple(lead), rows, cols)

    def dot(self, a, b, a_name, b_name, dims):
        return _dot_lines(a, b, a_name, b_name, dims)

    def softmax(self, row, j, what):
        return _softmax_lines(row, j, self.tok, what)

    def done(self, kind, formula, lines, recomputed, sources=(), products=()) -> Explanation:
        return Explanation(self.stage, self.name, self.index, self.value, kind, formula, tuple(lines),
                           tuple(products), float(recomputed), tuple(sources))

    # ---- rules shared by several stages ------------------------------------------------------
    def is_weight(self) -> bool:
        return self.name.startswith(("W_", "b_", "wrapper_W_", "wrapper_b_"))

    def weight(self) -> Explanation:
        """A drawn weight or bias: given, not computed."""
        cfg = self.cfg
        how = "nn.Linear's init (out_proj)" if self.name in ("W_out", "b_out") else \
            ("torch.rand" if cfg.init == "rand" else "nn.Linear's init")
        return self.done("given", f"{self.name}{list(self.index)} = {_f(self.value)}",
                         [f"a weight drawn by {how} after torch.manual_seed({cfg.seed}); learned in training"],
                         self.value)

    def projection(self, col: int) -> Explanation:
        """queries/keys/values[i, j] = x_i · W[:, col] (+ b[col]); col: the column of the stage's W."""
        role = {"queries": "query", "keys": "key", "values": "value"}[self.name]
        tok, i, stage = self.tok, self.i, self.stage
        x = self.get("simplified", "inputs")[i]
        W = self.get(stage, f"W_{role}")
        products, total, lines = _dot_lines(x, W[:, col], f"x_{tok[i]}", f"W_{role}[:, {col}]", ("input dims",))
        srcs = [Source("simplified", "inputs", (), (i,), None), Source(stage, f"W_{role}", (), None, (col,))]
        if self.cfg.qkv_bias:
            bias = float(self.get(stage, f"b_{role}")[col])
            total += bias
            lines += (f"+ bias b_{role}[{col}] = {_f(bias)} → {_f(total)}",)
            srcs.append(Source(stage, f"b_{role}", (), None, (col,)))
        formula = f"{self.name}{self.head}[{tok[i]}, {self.col_label(self.j)}] = x_{tok[i]} · W_{role}[:, {col}]"
        if self.h is not None:
            hd = self.cfg.head_dim
            lines = (f"head {self.h} uses columns {self.h * hd}…{(self.h + 1) * hd - 1} of W_{role}",) + lines
        return self.done("dot", formula, lines, total, srcs, products)

    def score(self, src_stage: str, lead_src: tuple[int, ...]) -> Explanation:
        """score[i, j] = q_i · k_j, with the queries and keys of ``src_stage``."""
        tok, i, j, head = self.tok, self.i, self.j, self.head
        q = self.get(src_stage, "queries", self.b, self.h)
        k = self.get(src_stage, "keys", self.b, self.h)
        products, total, lines = _dot_lines(q[i], k[j], f"q{head}_{tok[i]}", f"k{head}_{tok[j]}", ("dims",))
        srcs = [Source(src_stage, "queries", lead_src, (i,), None), Source(src_stage, "keys", lead_src, (j,), None)]
        return self.done("dot", f"score{head}[{tok[i]}, {tok[j]}] = q{head}_{tok[i]} · k{head}_{tok[j]}", lines,
                         total, srcs, products)

    def masked(self) -> Explanation:
        """masked[i, j]: the score, or −∞ where the causal mask hides it."""
        tok, i, j = self.tok, self.i, self.j
        raw = float(self.get(self.stage, "attn_scores", self.b, self.h)[i, j])
        hidden = bool(self.get("causal", "mask")[i, j] == 0)
        lines = [f"{tok[j]} comes after {tok[i]}: set to −∞ so softmax gives it weight 0"] if hidden else \
            [f"{tok[j]} is not in the future of {tok[i]}: the score is kept, {_f(raw)}"]
        return self.done("mask", f"masked{self.head}[{tok[i]}, {tok[j]}]", lines, float("-inf") if hidden else raw,
                         [Source(self.stage, "attn_scores", self.lead, (i,), (j,)),
                          Source("causal", "mask", (), (i,), (j,))])

    def masked_softmax(self, d_k: int) -> Explanation:
        """softmax(masked[i, :] / √d_k)[j]."""
        tok, i, j = self.tok, self.i, self.j
        row = self.get(self.stage, "masked_scores", self.b, self.h)[i] / math.sqrt(d_k)
        v, lines = _softmax_lines(row, j, tok, f"masked scores / √{d_k}")
        return self.done("softmax", f"softmax(masked{self.head}[{tok[i]}, :] / √{d_k})[{tok[j]}]", lines, v,
                         [Source(self.stage, "masked_scores", self.lead, (i,), None)])

    def mix(self, weights_row, value_col, vname: str, wsrc: Source, vsrc: Source) -> Explanation:
        """z_i[j] = Σ_k weight[i, k] · v_k[j]."""
        tok, i = self.tok, self.i
        label = self.col_label(self.j)
        products, total, lines = _dot_lines(weights_row, value_col, f"weights[{tok[i]}, :]", f"{vname}[:, {label}]",
                                            ("tokens",))
        return self.done("dot", f"z{self.head}_{tok[i]}[{label}] = Σ_j weight[{tok[i]}, j] · {vname}_j", lines,
                         total, [wsrc, vsrc], products)


EXTERNAL = ("decode", "tiled", "rope")      # stages with their own options, not in core.stages.STAGES


def external_stage(stage: str):
    """core.stages.decode / tiled / rope for a stage (or trace stage) named after one of them."""
    from core.stages import decode, rope, tiled
    return {"decode": decode, "tiled": tiled, "rope": rope}[next(p for p in EXTERNAL if stage.startswith(p))]


def explain_cell(trace: Trace, stage: str, name: str, index) -> Explanation:
    """Explain one cell; ``index`` is the full index (leading batch/head indices included).

    The rule is the stage's (core/stages/<stage>.py, ``explain``); a cell no rule covers
    gets its value.
    """
    from core.stages import STAGES

    cell = Cell(trace, stage, name, tuple(int(i) for i in index))
    if stage.startswith(EXTERNAL):          # the external stages (not in STAGES): decode_pos07, tiled_step003, rope…
        explained = external_stage(stage).explain(cell)
    else:
        explained = STAGES[stage].explain(cell)
    if explained is not None:
        return explained
    return cell.done("value", f"{name}{list(cell.index)} = {_f(cell.value)}", [], cell.value)
