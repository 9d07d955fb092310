"""Fill a step's title, formula and explanation with the current tokens, sizes and numbers.

Numpy only (no Qt). Templates (``resources/steps.json``) use:

- ``{{var}}``: sizes and settings (T, d_in, d_out, h, hd, d_k, sqrt_dk, p, keep_scale, seed, …),
  ``tokN`` (the N-th token's label) and the book's notation for "the query" (token 2, or token
  1 of a one-token text): ``qn`` (its number), ``sup_q`` (⁽²⁾), ``sub_q`` (₂), ``tok_q``; the
  key of the worked score example: ``kn``, ``sup_k``, ``sub_qk`` (₂₃), ``tok_k``;
- ``{{stage.name[i,j]}}``: a value or a row of the trace (4 decimals, batch 0; indices may be
  ``q``/``k``; long rows show their first values and "… (768 values)");
- ``{{#cond}}…{{/cond}}`` / ``{{^cond}}…{{/cond}}``: kept when the condition holds / does not
  (``book`` = the Book preset's traces are on screen; ``rand``, ``causal``, ``dropout``, ``bias``,
  ``batched``, ``many`` (T > 1), ``heads`` (h > 1));
- ``{{@block}}``: a sentence built in Python (:data:`BLOCKS`), e.g. worked arithmetic whose
  shown factors multiply out to the shown result.
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext

import numpy as np

from gui.external_model import blocks as _external_blocks

_FIELD = re.compile(r"\{\{\s*(@?)([^{}#^/@][^{}]*?)\s*\}\}")     # {{var}}, {{stage.name[i]}}, {{@block}}
_SECTION = re.compile(r"\{\{([#^])(\w+)\}\}(.*?)\{\{/\2\}\}", re.S)
_REF = re.compile(r"^(\w+)\.(\w+)(?:\[([\w,\s]*)\])?$")

ROW_SHOWN = 6          # a longer row shows this many values, then "… (N values)"
LIST_SHOWN = 6         # a longer list of per-token terms shows this many, then the last
TOKEN_CHARS = 20       # a longer token label is cut (a sentence stays readable)
_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def sup(n: int) -> str:
    """The book's superscript for token n (1-based): x⁽²⁾, never x² (which reads as squared)."""
    return f"⁽{str(n).translate(_SUP)}⁾"


def sub(*numbers: int) -> str:
    """Subscripts as the book writes ω₂₁; with a two-digit number, commas (ω₂,₁₀ is not ω₂₁₀)."""
    parts = [str(n).translate(_SUB) for n in numbers]
    return ("" if all(n < 10 for n in numbers) else ",").join(parts)


def short(label: str) -> str:
    return label if len(label) <= TOKEN_CHARS else label[:TOKEN_CHARS - 1] + "…"


def query_index(trace) -> int:
    """The token the "one query" steps follow: the book's x⁽²⁾, or x⁽¹⁾ when there is one token."""
    return 1 if len(trace.tokens) > 1 else 0


def key_index(trace) -> int:
    """The key of the worked score example: the token after the query (journey → starts)."""
    return min(query_index(trace) + 1, len(trace.tokens) - 1)


def is_book(controller) -> bool:
    """True while the Book preset's traces are on screen (the book's own wording applies)."""
    return getattr(controller, "traces_mode", None) == "book"


def variables(trace) -> dict[str, str]:
    cfg = trace.config
    hd = cfg.d_out // cfg.num_heads
    q, k = query_index(trace), key_index(trace)
    dropout = getattr(cfg, "dropout", 0.0)            # the pretrained stage: no dropout, no drawn seed
    out = {
        "T": str(len(trace.tokens)), "d_in": str(cfg.d_in), "d_out": str(cfg.d_out),
        "h": str(cfg.num_heads), "hd": str(hd), "hd_last": str(hd - 1), "d_k": str(cfg.d_out),
        "sqrt_dk": f"{math.sqrt(cfg.d_out):.4f}", "sqrt_hd": f"{math.sqrt(hd):.4f}",
        "p": f"{dropout:g}", "keep_scale": _number(1.0 / (1.0 - dropout), 4),
        "dropout_seed": str(getattr(cfg, "dropout_seed", "")), "seed": str(getattr(cfg, "seed", "")),
        "init": getattr(cfg, "init", "checkpoint"),
        "qkv_bias": str(cfg.qkv_bias), "b": str(cfg.batch), "device": trace.device,
        "qn": str(q + 1), "sup_q": sup(q + 1), "sub_q": sub(q + 1), "sub_qq": sub(q + 1, q + 1),
        "tok_q": short(trace.labels[q]), "kn": str(k + 1), "sup_k": sup(k + 1),
        "sub_qk": sub(q + 1, k + 1), "tok_k": short(trace.labels[k]),
    }
    if hasattr(cfg, "layer"):                         # the pretrained stage's layer
        out["layer"] = str(cfg.layer)
    return _Tokens(out, trace.labels)


class _Tokens(dict):
    """The variables, and ``tok{i}`` (token i's label, shortened) looked up when a text asks:
    not 1,024 entries built five times per redraw of a 1024-token step."""

    def __init__(self, values: dict[str, str], labels):
        super().__init__(values)
        self._labels = labels

    def _token(self, key: str) -> str | None:
        if key.startswith("tok") and key[3:].isdigit() and int(key[3:]) < len(self._labels):
            return short(self._labels[int(key[3:])])
        return None

    def __contains__(self, key) -> bool:
        return super().__contains__(key) or (isinstance(key, str) and self._token(key) is not None)

    def __missing__(self, key):
        value = self._token(key) if isinstance(key, str) else None
        if value is None:
            raise KeyError(key)
        return value


def conditions(trace, book: bool) -> dict[str, bool]:
    cfg = trace.config
    return {"book": book, "rand": getattr(cfg, "init", "") == "rand", "causal": getattr(cfg, "causal", False),
            "dropout": getattr(cfg, "dropout", 0.0) > 0, "bias": cfg.qkv_bias, "batched": cfg.batch > 1,
            "many": len(trace.tokens) > 1, "heads": cfg.num_heads > 1,
            "layer0": getattr(cfg, "layer", None) == 0, "full_layer": bool(getattr(cfg, "full_layer", False))}


def _fmt(v) -> str:
    v = float(v)
    if math.isinf(v):
        return "−∞" if v < 0 else "∞"
    return f"{v:.4f}"


def _number(v: float, decimals: int) -> str:
    """v with ``decimals`` decimals; a whole number (the 2 of 1/(1 − 0.5)) as it is."""
    if float(v).is_integer() and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.{decimals}f}"


def row_text(values) -> str:
    """A row for a sentence: every value up to ROW_SHOWN + 2, else the first few and the count."""
    values = np.asarray(values).ravel()
    if values.size <= ROW_SHOWN + 2:
        return ", ".join(_fmt(v) for v in values)
    return ", ".join(_fmt(v) for v in values[:ROW_SHOWN]) + f", … ({values.size} values)"


def _array(trace, stage: str, name: str) -> np.ndarray:
    item = trace[stage, name]
    arr = item.numpy()
    return arr[0] if item.axes and item.axes[0] == "batch" else arr


def _lookup(ref: str, trace) -> str | None:
    m = _REF.match(ref)
    if not m or (m.group(1), m.group(2)) not in trace:
        return None
    arr = _array(trace, m.group(1), m.group(2))
    names = {"q": query_index(trace), "k": key_index(trace)}
    try:
        idx = tuple(names[i.strip()] if i.strip() in names else int(i)
                    for i in m.group(3).split(",") if i.strip()) if m.group(3) else ()
        sub_arr = np.asarray(arr[idx] if idx else arr)
    except (IndexError, ValueError, KeyError):
        return "…"
    if sub_arr.ndim == 0:
        return _fmt(sub_arr)
    if sub_arr.ndim == 1:
        return row_text(sub_arr)
    return f"({' × '.join(str(n) for n in sub_arr.shape)} values)"


# ---- arithmetic whose shown numbers work out ------------------------------------------------
def _shown(v: float, decimals: int, first: bool) -> str:
    s = _number(v, decimals)
    return s if first or not s.startswith("-") else f"({s})"


def _works_out(terms: list[tuple[float, float]], result: float, op: str, decimals: int) -> bool:
    """Do the factors, shown with ``decimals`` decimals, give the shown result (exact decimal arithmetic)?"""
    with localcontext() as ctx:
        ctx.prec = 60
        total = Decimal(0)
        for a, b in terms:
            da, db = Decimal(_number(a, decimals)), Decimal(_number(b, decimals))
            total += da * db if op == "×" else da / db
        return abs(total - Decimal(_number(result, decimals))) <= Decimal(5) * Decimal(10) ** -(decimals + 1)


def equation(terms: list[tuple[float, float]], result: float, op: str = "×") -> str:
    """``a × b + c × d = r`` (or ``a / b = r``) with enough decimals that the shown factors give the
    shown result when a reader works it out (0.3800 × 2 = 0.7599 would not); "≈" where no
    precision up to 7 decimals does."""
    decimals = next((d for d in range(4, 8) if _works_out(terms, result, op, d)), None)
    sign = "=" if decimals else "≈"
    decimals = decimals or 4
    left = " + ".join(f"{_shown(a, decimals, n == 0)} {op} {_shown(b, decimals, False)}"
                      for n, (a, b) in enumerate(terms))
    return f"{left} {sign} {_shown(result, decimals, True)}"


# ---- blocks: sentences built from the trace -------------------------------------------------
def _token_terms(n: int) -> list[int]:
    """Which of n per-token terms a sentence lists: all, or the first LIST_SHOWN and the last."""
    return list(range(n)) if n <= LIST_SHOWN + 1 else list(range(LIST_SHOWN)) + [n - 1]


def _query_dots(trace, esc) -> str:
    """Step 1.2: ω₂ᵢ = x⁽²⁾ · x⁽ⁱ⁾ for every token i, one worked out factor by factor."""
    x = _array(trace, "simplified", "inputs")
    scores = _array(trace, "simplified", "attn_scores")
    q, labels, T = query_index(trace), trace.labels, len(trace.tokens)
    d_in = x.shape[-1]
    worked = f"ω{sub(q + 1, 1)} = x{sup(q + 1)} · x{sup(1)} = "
    if d_in <= 4:
        worked += equation([(x[q, d], x[0, d]) for d in range(d_in)], scores[q, 0])
    else:
        worked += f"the sum of {d_in} products x{sup(q + 1)}_d × x{sup(1)}_d = {_fmt(scores[q, 0])}"
    lines = []
    shown = _token_terms(T)
    for n, i in enumerate(shown):
        if n and i != shown[n - 1] + 1:
            lines.append("…")
        lines.append(f"ω{sub(q + 1, i + 1)} = x{sup(q + 1)} · x{sup(i + 1)} "
                     f"(<b>{esc(short(labels[i]))}</b>) = {_fmt(scores[q, i])}")
    count = f" ({T} scores in all: the map's row)" if len(shown) < T else ""
    return (f"Factor by factor: {worked}. Against every input{count}:<br>" + "<br>".join(lines))


def _query_context(trace, esc) -> str:
    """Step 1.4: z⁽²⁾ = α₂₁ x⁽¹⁾ + α₂₂ x⁽²⁾ + … with the weights' numbers."""
    w = _array(trace, "simplified", "attn_weights")
    z = _array(trace, "simplified", "context_vecs")
    q, T = query_index(trace), len(trace.tokens)
    shown = _token_terms(T) if T <= 4 else [0, 1, T - 1]
    parts = []
    for n, i in enumerate(shown):
        if n and i != shown[n - 1] + 1:
            parts.append("…")
        parts.append(f"{_fmt(w[q, i])}·x{sup(i + 1)}")
    return f"z{sup(q + 1)} = " + " + ".join(parts) + f" = [{row_text(z[q])}]"


def _scale_example(trace, esc) -> str:
    """Step 2.5: ω₂₂ / √d_k worked out."""
    s = _array(trace, "trainable", "attn_scores")
    scaled = _array(trace, "trainable", "scaled_scores")
    q = query_index(trace)
    root = math.sqrt(trace.config.d_out)
    return (f"ω{sub(q + 1, q + 1)} / √{trace.config.d_out} = "
            + equation([(float(s[q, q]), root)], float(scaled[q, q]), op="/"))


def _dropout_example(trace, esc) -> str:
    """Step 3.7: one kept weight scaled by 1/(1 − p), and one dropped weight."""
    p = trace.config.dropout
    if p == 0:
        return "With p = 0 nothing is dropped and the scale is 1: A_drop = A."
    a = _array(trace, "causal", "attn_weights")
    keep = _array(trace, "causal", "dropout_mask")
    dropped = _array(trace, "causal", "dropped_weights")
    labels, T = trace.labels, a.shape[-1]
    order = [(r, c) for r in list(range(min(2, T - 1), T)) + list(range(min(2, T - 1)))
             for c in range(T)]
    live = [(r, c) for r, c in order if a[r, c] > 0]
    kept = next(((r, c) for r, c in live if keep[r, c]), None)
    gone = next(((r, c) for r, c in live if not keep[r, c]), None)
    out = []
    if kept:
        r, c = kept
        out.append(f"A_drop[{esc(short(labels[r]))}, {esc(short(labels[c]))}] = "
                   + equation([(float(a[r, c]), 1.0 / (1.0 - p))], float(dropped[r, c])) + " (kept)")
    if gone:
        r, c = gone
        out.append(f"A_drop[{esc(short(labels[r]))}, {esc(short(labels[c]))}] = 0 "
                   f"(dropped, though A was {_fmt(a[r, c])})")
    return "; ".join(out) + "."


def _head_columns(trace, esc) -> str:
    """Which columns of the merged T × d_out matrix come from which head."""
    h, d_out = trace.config.num_heads, trace.config.d_out
    hd = d_out // h

    def cols(head: int) -> str:
        first, last = head * hd, head * hd + hd - 1
        return f"column out{first}" if hd == 1 else f"columns out{first}…out{last}"

    if h == 1:
        return "the only column, out0, is head 0's" if d_out == 1 else f"with one head, all {d_out} columns are head 0's"
    text = f"{cols(0)} {'is' if hd == 1 else 'are'} head 0, {cols(1)} head 1"
    if h > 2:
        text += f", …, {cols(h - 1)} head {h - 1}"
    return text


def _cls_share(trace, esc) -> str:
    """The pretrained stage: how much weight the average word (a query row that is not
    [CLS]/[SEP]) of this layer puts on [CLS] and on [SEP]."""
    if ("pretrained", "attn_weights") not in trace:
        return ""
    item = trace["pretrained", "attn_weights"]
    a = item.numpy()                                   # (h, T, T) or (T, T) for one head
    words = [i for i, s in enumerate(trace.pieces.special) if not s]
    share = float(a[..., words, 0].mean())             # column 0 is [CLS]
    sep = float(a[..., words, -1].mean())              # the last column is [SEP]
    heads = "over the 12 heads" if item.axes[0] == "head" else f"in head {trace.config.head}"
    return (f"in layer {trace.config.layer}, the average word puts {share:.0%} of its weight on [CLS] and "
            f"{sep:.0%} on [SEP] ({heads}; for the ready example, layers 1–4 park 55–63 % on [CLS]).")


BLOCKS = {"cls_share": _cls_share, "query_dots": _query_dots, "query_context": _query_context,
          "scale_example": _scale_example, "dropout_example": _dropout_example,
          "head_columns": _head_columns}
BLOCKS.update(_external_blocks())        # stages 6–8 (gui/external_model.py): decode_pos, tiled_tile, rope_shift…


# ---- rendering -------------------------------------------------------------------------------
def _sections(template: str, conds: dict[str, bool]) -> str:
    def keep(m: re.Match) -> str:
        holds = conds.get(m.group(2), False)
        return m.group(3) if holds == (m.group(1) == "#") else ""

    while True:
        out = _SECTION.sub(keep, template)
        if out == template:
            return out
        template = out


def render(template: str, trace, escape: bool = False, book: bool = False) -> str:
    """Replace every ``{{…}}`` with its value for ``trace`` (unknown fields stay visible).

    ``escape``: the template is HTML, so values (token labels) are escaped; ``book``: the Book
    preset's traces are shown, so the book's own wording ({{#book}}…) is kept.
    """
    vars_ = variables(trace)
    esc = html.escape if escape else (lambda s: s)
    template = _sections(template, conditions(trace, book))

    def field(m: re.Match) -> str:          # one pass: an inserted value is never read as a field
        key = m.group(2)
        if m.group(1):
            fn = BLOCKS.get(key)
            return fn(trace, esc) if fn else m.group(0)
        if key in vars_:
            value = vars_[key]
        else:
            value = _lookup(key, trace)
            if value is None:
                return m.group(0)
        return esc(value)

    return _FIELD.sub(field, template)


@dataclass(frozen=True)
class StepTexts:
    title: str      # plain text
    formula: str    # plain text
    text: str       # HTML, values escaped


def title_and_formula(step, trace, book: bool) -> tuple[str, str]:
    """The step's title and formula (plain text) for ``trace``, as the step view shows them."""
    return render(step.heading, trace, book=book), render(step.formula, trace, book=book)


def step_texts(step, trace, book: bool) -> StepTexts:
    """A step's title, formula and explanation for ``trace`` (what the GUI shows)."""
    title, formula = title_and_formula(step, trace, book)
    return StepTexts(title=title, formula=formula, text=render(step.text, trace, escape=True, book=book))
