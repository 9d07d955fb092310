"""Turn a step's :class:`~gui.steps.Panel` and a trace into what a heatmap draws (numpy only).

:func:`resolve_panel` picks the 2-D slices (one per head, or per batch item for the batch
step), the axis labels, the colour scheme (signed → diverging, symmetric levels; attention
weights → sequential, fixed to [0, 1]; masks → binary) and which cells the causal mask hides,
each from the intermediate's term (``Term.colours``, ``masked``, ``head_columns``: no names
here). The exact values stay here; only the display copy replaces masked cells with NaN. What
is made once per intermediate (arrays, colour ranges, display images) is kept in the display
cache (gui.display_cache).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np

from gui.display_cache import DISPLAY
from gui.steps import Panel, cell_templates


@dataclass
class MapData:
    """One 2-D map: exact values, which cells are masked, its title and lead index."""

    values: np.ndarray                 # (R, C) exact values (as the core computed them)
    masked: np.ndarray | None          # (R, C) bool, True = hidden by the causal mask
    title: str = ""
    index: tuple[int, ...] = ()        # leading (batch/head) indices in the intermediate
    head: int | None = None
    # the intermediate these values are a slice of, and which slice: what is drawn of this map
    # is kept for it in the display cache (the trace worker fills it before the window draws,
    # see gui.heatmap.prerender). None: values of its own (a difference), nothing kept
    source: object = field(default=None, repr=False, compare=False)
    slice_key: tuple = ()
    title_colour: str = ""             # the title's colour ("": the default; stage 6: a query head's K/V group)

    def display(self, stride: int = 1) -> np.ndarray:
        """float32 copy for the ImageItem (every ``stride``-th row and column): masked and
        non-finite cells are NaN, which the ImageItem draws transparent. Read-only, made once
        per trace and stride when the map has a source."""
        return self.kept(("display", stride), lambda: self._display(stride))

    def kept(self, what: tuple, make):
        """``make()``, kept in the display cache for this map under ``what`` (made each time
        without a source)."""
        return make() if self.source is None else DISPLAY.get(self.source, self.slice_key + what, make)

    def found(self, what: tuple):
        """What is kept for this map under ``what``, or None."""
        return None if self.source is None else DISPLAY.peek(self.source, self.slice_key + what)

    def keep(self, what: tuple, value) -> None:
        if self.source is not None:
            DISPLAY.put(self.source, self.slice_key + what, value)

    def pooled(self, stride: int) -> np.ndarray:
        """Weights drawn smaller than a pixel a cell: every ``stride``-th row, each drawn cell the
        largest of its ``stride`` columns (gui.pooling.max_pool_stride), so a one-cell stripe stays
        visible. Made from the sampled rows only (a 1024² map: 1/stride of the work), once per
        trace and stride."""
        from gui.pooling import max_pool_stride
        return self.kept(("pooled", stride), lambda: max_pool_stride(self._display(stride, cols=1), stride))

    def _display(self, stride: int, cols: int | None = None) -> np.ndarray:
        """display(stride); ``cols``: another stride for the columns (1: every column)."""
        cols = stride if cols is None else cols
        sampled = stride > 1 or cols > 1
        img = np.array(self.values[::stride, ::cols] if sampled else self.values, dtype=np.float32, copy=True)
        hidden = ~np.isfinite(img)
        if self.masked is not None:                 # one NaN pass for both (12 heads × 1024: 2.1 → 1.4 ms)
            hidden |= self.masked[::stride, ::cols] if sampled else self.masked
        np.copyto(img, np.float32(np.nan), where=hidden)
        img.setflags(write=False)
        return img


@dataclass
class MatrixData:
    """Everything a heatmap panel needs for one matrix of a step."""

    key: tuple[str, str]
    title: str
    symbol: str
    meaning: str
    maps: list[MapData]
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    row_axis: str
    col_axis: str
    kind: str                          # "signed", "prob", "binary", "nonneg", "diff", "seq" (all ≥ 0:
                                       # sequential from the smallest), "ids" (integers: neutral, printed)
    levels: tuple[float, float]
    template: str = ""
    row_offset: int = 0                # first row shown (row slices)
    extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.maps[0].values.shape if self.maps else (0, 0)

    def describe(self, map_index: int, row: int, col: int) -> str:
        """Hover text: labels, value and meaning of one cell (exact value)."""
        m = self.maps[map_index]
        v = m.values[row, col]
        masked = m.masked is not None and bool(m.masked[row, col])
        r, c = self.row_labels[row], self.col_labels[col]
        text = (self.template or "{symbol}[{r}, {c}] = {v}").format(
            r=r, c=c, v=token_number(v) if self.kind == "ids" else format_value(v), h=m.head if m.head is not None else "", symbol=self.symbol)
        if masked:
            text += f"\nmasked: '{c}' comes after '{r}', so '{r}' may not attend to it"
        where = f"{self.key[0]}.{self.key[1]}"
        if m.index:
            where += "[" + ", ".join(str(i) for i in m.index) + "]"
        return f"{text}\n{where}: {self.meaning}"


def format_value(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "−∞" if v < 0 else "∞"
    return f"{v:.4f}"


def _masked_cells(item, causal: bool, rows: int, cols: int, row_offset: int) -> np.ndarray | None:
    """True where the causal mask hides a cell of ``item`` (None: nothing is masked): above the
    diagonal of a ``Term.masked`` (query, key) map of a causal config."""
    if not causal or not item.term.masked or tuple(item.axes[-2:]) != ("query", "key"):
        return None
    return _future(row_offset, rows, cols)


@functools.lru_cache(maxsize=8)
def _future(row_offset: int, rows: int, cols: int) -> np.ndarray | None:
    """The cells whose key comes after their query (rows from ``row_offset``), read-only; None
    when there are none. A pure memo of a constant (the same array for every trace)."""
    cells = np.less.outer(np.arange(row_offset, row_offset + rows), np.arange(cols))
    cells.setflags(write=False)
    return cells if cells.any() else None


def _value_range(maps: list[MapData], empty: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    """(min, max) over the finite, unmasked cells of all maps (no copies of big arrays); ``empty``
    when there is none."""
    lo, hi = math.inf, -math.inf
    for m in maps:
        valid = np.isfinite(m.values)
        if m.masked is not None:
            valid &= ~m.masked
        lo = min(lo, float(np.min(m.values, where=valid, initial=math.inf)))
        hi = max(hi, float(np.max(m.values, where=valid, initial=-math.inf)))
    return (lo, hi) if lo <= hi else empty


def _spread_range(maps: list[MapData]) -> tuple[float, float]:
    """The spread scale's range: (min, max) over the finite, unmasked cells, leaving out rows with
    one such cell (a causal map's first query: its weight is 1 by definition and would stretch
    the scale over every other row's); those cells take the top colour. (0, 0) when no cell is
    left: see ``_spread_bounds``."""
    lo, hi = _spread_bounds(maps)
    return (lo, hi) if lo <= hi else (0.0, 0.0)


def _spread_bounds(maps: list[MapData]) -> tuple[float, float]:
    """_spread_range, (inf, −inf) when no cell is left. The cells to read are worked out once per
    mask (the heads of a step share one), with no copy of the maps: 12 heads × 1024 tokens in
    ~25 ms of the trace worker, not 90; a map holding nan or ±inf among them takes the careful
    pass."""
    lo, hi = math.inf, -math.inf
    where: dict[int, np.ndarray | str | None] = {}
    for m in maps:
        key = id(m.masked)
        if key not in where:
            w = None
            if m.masked is not None and _is_causal(m.masked):
                w = "causal"
            elif m.masked is not None:
                keep = _rows_kept(m)
                w = ~m.masked if keep is None else ~m.masked & keep[:, None]
            where[key] = w
        w = where[key]
        if isinstance(w, str):
            a, b = _causal_range(m.values)
        elif w is not None:
            a = float(np.min(m.values, where=w, initial=math.inf))
            b = float(np.max(m.values, where=w, initial=-math.inf))
        else:
            a, b = float(m.values.min()), float(m.values.max())
        if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
            return _value_range(_spread_cells(maps), empty=(math.inf, -math.inf))
        lo, hi = min(lo, a), max(hi, b)
    return lo, hi


def _unmasked_range(maps: list[MapData], spread: tuple[float, float]) -> tuple[float, float]:
    """``_value_range(maps)`` from their ``_spread_bounds`` and the rows those leave out (a
    causal map's first row: one cell): the weights' range without a second pass over every
    cell (12 heads × 1024 tokens: ~2.5 ms of the trace worker)."""
    kept: dict[int, np.ndarray | None] = {}             # per mask: the heads of a step share one
    left = []
    for m in maps:
        if id(m.masked) not in kept:
            kept[id(m.masked)] = _rows_kept(m)
        keep = kept[id(m.masked)]
        if keep is not None:
            left.append(MapData(m.values[~keep], m.masked[~keep]))
    lo, hi = _value_range(left, empty=(math.inf, -math.inf))
    lo, hi = min(lo, spread[0]), max(hi, spread[1])
    return (lo, hi) if lo <= hi else (0.0, 0.0)


def _rows_kept(m: MapData) -> np.ndarray | None:
    """The rows of ``m`` the spread range reads (None: all): those with more than one unmasked
    cell, where some rows have more and some have not."""
    if m.masked is None:
        return None
    if _is_causal(m.masked):
        seen = np.arange(m.masked.shape[0]) > 0                     # row 0: its one cell
    else:
        seen = (~m.masked).sum(axis=1) > 1
    return seen if seen.any() and not seen.all() else None


def _is_causal(masked: np.ndarray) -> bool:
    """Whether ``masked`` is the causal mask of a square map of ≥ 2 rows: exactly the cells
    above the diagonal (row 0 then has one cell, every other row ≥ 2)."""
    n = masked.shape[0]
    if masked.ndim != 2 or masked.shape[1] != n or n < 2:
        return False
    return bool(np.array_equal(masked, _causal_mask(n)))


@functools.lru_cache(maxsize=4)
def _causal_mask(n: int) -> np.ndarray:
    out = np.triu(np.ones((n, n), dtype=bool), 1)
    out.setflags(write=False)
    return out


def _causal_range(values: np.ndarray, block: int = 128) -> tuple[float, float]:
    """(min, max) of the cells below and on the diagonal, row 0 left out (its one cell): rows in
    blocks; the columns left of a block's first row are all visible (a plain min/max), its
    square on the diagonal takes the mask. Half the map is read, not all of it with a mask
    (12 heads × 1024 tokens: ~3 ms, not ~10)."""
    n = values.shape[0]
    found = []
    for r0 in range(1, n, block):
        r1 = min(n, r0 + block)
        left = values[r0:r1, :r0]                                       # c < r0 ≤ r: visible
        square = values[r0:r1, r0:r1]                                   # visible where c ≤ r
        keep = ~_causal_mask(n)[r0:r1, r0:r1]
        found += [float(left.min()), float(left.max()),
                  float(np.min(square, where=keep, initial=math.inf)), float(np.max(square, where=keep, initial=-math.inf))]
    if any(map(math.isnan, found)):
        return math.nan, math.nan                                       # the caller's careful pass
    return min(found), max(found)


def _spread_cells(maps: list[MapData]) -> list[MapData]:
    """The rows of ``maps`` the spread range reads (``_rows_kept``), as maps (the careful pass)."""
    out = []
    for m in maps:
        keep = _rows_kept(m)
        out.append(m if keep is None else MapData(m.values[keep], m.masked[keep]))
    return out


def warm(trace, panels, batch_index: int = 0) -> list[MatrixData]:
    """Resolve ``panels`` for ``trace`` once (on the trace worker), so that what the window
    then resolves on its own thread is found in the display cache; returns what it
    resolved (with the step's shared colour scales, as the window gets them). Never raises (a
    panel that cannot be drawn is reported when the window draws it)."""
    pairs = []
    for panel in panels:
        try:
            data = resolve_panel(panel, trace, batch_index)
        except Exception:
            continue
        if data is not None:
            pairs.append((panel, data))
    shared = share_levels(pairs)
    # the weights as the step view draws them by default (spread), made ahead too
    spread = [with_colours(d, "spread") for d in shared]
    return shared + [v for v, d in zip(spread, shared) if v is not d]


def _kind_and_levels(colours: str, lo: float, hi: float, is_diff: bool) -> tuple[str, tuple[float, float]]:
    """The colour scheme and levels of a map whose term has ``colours`` (``Term.colours``).
    A signed term whose values are all ≥ 0 (the book's embeddings, torch.rand weights) gets
    the sequential scale from its smallest to its largest value ("seq"): a diverging scale
    would spend its lower half on values that do not occur."""
    if is_diff:
        top = max(abs(lo), abs(hi), 1e-6)   # float rounding noise stays near white
        return "diff", (-top, top)
    if colours == "binary":
        return "binary", (0.0, 1.0)
    if colours == "prob" and lo >= 0.0 and hi <= 1.0 + 1e-6:
        return "prob", (0.0, 1.0)
    if colours == "nonneg" and lo >= 0.0:
        return "nonneg", (0.0, max(1.0, hi))
    if colours == "signed" and 0.0 <= lo < hi:
        return "seq", (lo, hi)
    top = max(abs(lo), abs(hi)) or 1.0
    return "signed", (-top, top)


# The colour scales the step view offers for weights (``with_colours``), by setting value.
COLOUR_MODES = {"spread": "spread (per map)", "row": "per row", "fixed": "shared 0–1"}
SPREAD_KINDS = ("prob", "nonneg")          # the kinds whose fixed scale can hide their values


def with_colours(data: MatrixData, mode: str) -> MatrixData:
    """``data`` on the colour scale ``mode`` (a key of COLOUR_MODES) where it has a choice
    (weights: ``SPREAD_KINDS``); the values stay exact, only the levels (or the image, per row)
    change. "spread": from the smallest to the largest value of the map (of the step's maps
    that share a scale: ``share_levels``), so 0.06…0.23 is not one colour; "row": each row ÷
    its largest weight; "fixed": as resolved (weights on [0, 1])."""
    if data.kind not in SPREAD_KINDS:
        return data
    if mode == "row" and data.kind == "prob":
        return replace(data, extra={**data.extra, "row_scaled": True}, levels=(0.0, 1.0))
    spread = data.extra.get("spread")
    if mode in ("spread", "row") and spread is not None and spread[0] < spread[1]:
        return replace(data, levels=(float(spread[0]), float(spread[1])), extra={**data.extra, "spread_scale": True})
    return data


def token_number(v: float) -> str:
    """An integer (a token id) as it is printed: no decimals."""
    return str(int(v)) if math.isfinite(v) else format_value(v)


def resolve_panel(panel: Panel, trace, batch_index: int = 0) -> MatrixData | None:
    """The maps a panel shows for ``trace``; None when an optional intermediate is absent."""
    if panel.key not in trace:
        if panel.optional:
            return None
        raise KeyError(f"{panel.key[0]}.{panel.key[1]} is not in the trace")
    item = trace[panel.key]
    if panel.merge:
        return _merged_heads(panel, item, trace, batch_index)
    causal = bool(getattr(trace.config, "causal", False))    # the (T, T) lower triangle, every stage's
    arr = DISPLAY.array(item)
    integers = arr.dtype.kind in "iu"                    # token ids (stage 5): a labelled row of numbers
    if integers:
        arr = arr.astype(np.float64)
    axes = list(item.axes)
    n_lead = sum(1 for a in axes[:2] if a in ("batch", "head", "group", "position"))
    if arr.ndim - n_lead == 1:                           # a bias (per head): drawn as one row
        arr = np.expand_dims(arr, -2)
        axes = axes[:-1] + [""] + axes[-1:]
        row_labels = (item.symbol,)
    else:
        row_labels = item.labels[-2]
    col_labels = item.labels[-1]
    lead: list[tuple[int, ...]] = [()]
    titles = [""]
    heads: list[int | None] = [None]
    if axes and axes[0] == "batch":
        nb = arr.shape[0]
        if panel.grid == "batch":
            lead = [(b,) for b in range(nb)]
            titles = [f"batch {b}" for b in range(nb)]
            heads = [None] * nb
        else:
            lead = [(min(batch_index, nb - 1),)]
        axes = axes[1:]
    if axes and axes[0] == "head":
        nh = arr.shape[len(lead[0])]
        lead = [l + (h,) for l in lead for h in range(nh)]
        titles = [f"head {h}" for _ in titles for h in range(nh)]
        heads = [h for _ in heads for h in range(nh)]
    if axes and axes[0] == "group":                   # the decode stage's K/V heads (cache_k: g × T × hd)
        ng = arr.shape[0]
        lead, titles, heads = [(k,) for k in range(ng)], [f"K/V head {k}" for k in range(ng)], [None] * ng
    if axes and axes[0] == "position":                # RoPE's pairs (position × pair × 2): one map per position
        npos = arr.shape[0]
        lead, heads = [(k,) for k in range(npos)], [None] * npos
        titles = [f"pos {k} {item.labels[0][k]}" for k in range(npos)]
    r0, r1 = panel.rows if panel.rows else (0, arr.shape[-2])
    r1 = min(r1, arr.shape[-2])
    r0 = min(r0, r1 - 1) if r1 > 0 else 0
    maps = []
    hidden: dict[tuple[int, ...], np.ndarray | None] = {}
    for idx, title, head in zip(lead, titles, heads):
        values = arr[idx] if idx else arr
        if panel.is_diff:
            other = DISPLAY.array(trace[panel.diff[1]])
            values = values.astype(np.float64) - (other[idx] if idx else other).astype(np.float64)
        values = values[r0:r1]
        if values.shape not in hidden:        # one mask for every head's map (all the same size)
            hidden[values.shape] = _masked_cells(item, causal, values.shape[0], values.shape[1], r0)
        masked = hidden[values.shape]
        index = tuple(int(i) for i in idx)
        # a difference panel's values are its own (not the intermediate's): nothing kept
        maps.append(MapData(values, masked, title, index, head, source=None if panel.is_diff else item,
                            slice_key=("map", index, r0, r1)))
    # colour levels from every row (a one-row slice keeps the full matrix's colours)
    def full_range() -> tuple[float, float]:
        if not panel.rows:
            return _value_range(maps)
        full = []
        for idx in lead:
            v = arr[idx] if idx else arr
            if panel.is_diff:
                other = DISPLAY.array(trace[panel.diff[1]])
                v = v.astype(np.float64) - (other[idx] if idx else other).astype(np.float64)
            full.append(MapData(v, _masked_cells(item, causal, v.shape[0], v.shape[1], 0)))
        return _value_range(full)
    # kept: a trace never changes, and the worker finds the colour range of the step on screen
    # before the result reaches the window (:func:`warm`), 30 ms of a 12-head 1024-token step.
    # Weights: the spread range and the rows it leaves out are every cell, read once for both
    weights = not panel.is_diff and item.term.colours in SPREAD_KINDS
    spread = (lambda: DISPLAY.get(item, ("spread", tuple(lead), r0, r1, causal), lambda: _spread_bounds(maps)))
    if weights and not panel.rows:
        lo, hi = DISPLAY.get(item, ("value_range", None, tuple(lead), causal), lambda: _unmasked_range(maps, spread()))
    else:
        lo, hi = DISPLAY.get(item, ("value_range", panel.diff if panel.is_diff else None, tuple(lead), causal),
                             full_range)
    kind, levels = _kind_and_levels(item.term.colours, lo, hi, panel.is_diff)
    extra = {}
    if integers:                  # ids, not quantities: neutral cells, the numbers printed
        kind, levels = "ids", (lo, hi if hi > lo else lo + 1.0)
    elif kind in SPREAD_KINDS:    # the values' own range (of the rows shown), for the spread scale
        a, b = spread()
        extra["spread"] = (float(a), float(b)) if a <= b else (0.0, 0.0)
    name = item.name
    title = f"{item.symbol} · {name}"
    template = cell_templates().get(f"{item.stage}.{name}", "")
    if panel.is_diff:
        max_diff = max(abs(lo), abs(hi))
        title = f"{panel.label or 'difference'}  max |diff| {max_diff:.1e}"
        template = panel.label + "[{r}, {c}] = {v}"
        extra["max_abs_diff"] = max_diff
    col_axis = axes[-1]
    heads = trace.config.num_heads
    if item.term.head_columns and heads > 1:
        extra["head_width"] = trace.config.d_out // heads      # lines between the heads' columns
        col_axis = f"{col_axis}  (│ between heads, hd = {extra['head_width']})"
    if panel.rows:
        title += f"   rows {r0 + 1}…{r1}" if r1 - r0 > 1 else f"   row {r0 + 1} ({row_labels[r0]})"
    return MatrixData(
        key=panel.key, title=title, symbol=item.symbol, meaning=item.term.meaning, maps=maps,
        row_labels=tuple(row_labels[r0:r1]), col_labels=tuple(col_labels),
        row_axis=axes[-2] if len(axes) >= 2 else "", col_axis=col_axis,
        kind=kind, levels=levels, template=template, row_offset=r0, extra=extra,
    )


def share_levels(pairs: list[tuple[Panel, MatrixData]]) -> list[MatrixData]:
    """One colour scale for the panels of a step that are meant to be compared (the same
    ``Panel.scale`` name): the union of their levels, symmetric when any is signed, so equal
    numbers get equal colours (2.5's scaled scores look paler than the raw ones, as they are).
    Marked ``extra["shared_scale"]`` for the colour bar's caption."""
    groups: dict[str, list[int]] = {}
    for k, (panel, _data) in enumerate(pairs):
        if panel.scale:
            groups.setdefault(panel.scale, []).append(k)
    out = [data for _panel, data in pairs]
    for members in groups.values():
        if len(members) < 2:
            continue
        datas = [out[k] for k in members]
        lo = min(d.levels[0] for d in datas)
        hi = max(d.levels[1] for d in datas)
        kinds = {d.kind for d in datas}
        signed = "signed" in kinds or "diff" in kinds
        if signed:
            top = max(abs(lo), abs(hi)) or 1.0
            lo, hi = -top, top
        spreads = [d.extra["spread"] for d in datas if "spread" in d.extra]
        spread = (min(s[0] for s in spreads), max(s[1] for s in spreads)) if spreads else None
        for k in members:
            extra = {**out[k].extra, "shared_scale": True}
            if spread is not None and "spread" in extra:
                extra["spread"] = spread           # compared weights keep one spread range
            kind = "signed" if signed and out[k].kind == "seq" else out[k].kind   # one scheme for one scale
            out[k] = replace(out[k], kind=kind, levels=(lo, hi), extra=extra)
    return out


def _merged_heads(panel: Panel, item, trace, batch_index: int) -> MatrixData:
    """A per-head (b, h, T, hd) intermediate as the (T, d_out) matrix the heads were split from
    (or are merged into): head h is columns h·hd … (h+1)·hd − 1, with lines between the heads.
    The same numbers, only arranged as before ``.view``/``.transpose`` (4.4) or after the merge."""
    arr = DISPLAY.array(item)
    lead: tuple[int, ...] = ()
    if tuple(item.axes[:2]) == ("batch", "head") and arr.ndim == 4:
        lead = (min(batch_index, arr.shape[0] - 1),)
        arr = arr[lead[0]]                                                       # (b, h, T, hd) -> (h, T, hd)
    elif item.axes[0] != "head" or arr.ndim != 3:
        raise KeyError(f"{item.stage}.{item.name} has no head axis to merge")
    h, t, hd = arr.shape
    values = arr.transpose(1, 0, 2).reshape(t, h * hd)                           # (h, T, hd) -> (T, h·hd)
    lo, hi = _value_range([MapData(values, None)])
    kind, levels = _kind_and_levels(item.term.colours, lo, hi, False)
    extra = {"head_width": hd, "merged_heads": hd} if h > 1 else {"merged_heads": hd}
    return MatrixData(
        key=panel.key, title=f"{panel.label or item.symbol} · (T, d_out) before the split",
        symbol=panel.label or item.symbol, meaning=item.term.meaning,
        maps=[MapData(values, None, "", lead)],
        row_labels=tuple(item.labels[-2]), col_labels=tuple(f"out{j}" for j in range(h * hd)),
        row_axis=item.axes[-2], col_axis=f"d_out  (│ between heads, hd = {hd})" if h > 1 else "d_out",
        kind=kind, levels=levels, template="", extra=extra,
    )
