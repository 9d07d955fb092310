"""How big a heatmap panel must be and what it prints: the limits (cells, ticks, values), the
labels that fit, the least size of a panel of maps, its colour bar's caption, and whether two
matrices draw the same (:mod:`gui.heatmap` draws them)."""
from __future__ import annotations

import functools
import math

import numpy as np
from PySide6 import QtGui

from gui.matrices import MatrixData
from gui.present import pt

MAX_TEXT_CELLS = 12      # print values in the cells when rows and columns are both ≤ 12
MAX_DISPLAY = 512        # larger matrices are displayed downsampled
MIN_DISPLAY = 128        # … to about one sample per screen pixel, never fewer than this a side
BIG_MAP_MIN = 160        # px: the least a downsampled map (> MAX_TICKS rows or columns) is given
MAX_TICKS = 32           # label at most this many rows/columns per axis (every token up to 32)
MIN_TEXT_PX = 8          # cell values are never printed smaller than this
THUMBNAIL_MAPS = 5       # a grid of this many maps or more is drawn as thumbnails
LABEL_CHARS = 14         # longer row/column labels are elided (the hover names them in full)
SQUARE_RATIO = 8         # cells are square unless the matrix is more oblong than this
COMPACT_FONT = 0.85      # a compact panel's labels: this much of the application font (cells of ~13 px)
COMPACT_BIG_MAP = 96     # px: the least a downsampled map is given in a compact panel
BAR_WIDTH = 61           # px: a colour bar with its axis and caption (a panel without one is this much narrower)
THUMBNAIL_MIN = 64       # px: the least a thumbnail is given (COMPACT_THUMBNAIL in a compact panel)
COMPACT_THUMBNAIL = 40


def _elide(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:max(chars - 1, 1)] + "…"


def _fitted_ticks(labels, cell_px: float, fm: QtGui.QFontMetrics, widest: int | None) -> list:
    """Tick labels that do not overlap: every k-th label, elided to the room k cells give.

    ``widest`` (pixels of the widest label) marks a horizontal axis of upright labels; None a
    vertical axis, or a horizontal one whose labels are rotated (one text line a label).
    """
    avg = max(fm.averageCharWidth(), 1)
    cell_px = max(cell_px, 1e-6)        # a downsampled map's cells are well under a pixel
    horizontal = widest is not None
    if horizontal:
        # room for at least "abc…" and a gap; labels thinned anyway (more than MAX_TICKS) are
        # spaced whole ("out0  out64  out128 …", not "out…  out…")
        need = widest + 6 if len(labels) > MAX_TICKS else min(widest + 6, 4 * avg + 8)
    else:
        need = fm.height() + 1
    every = max(1, math.ceil(need / cell_px), math.ceil(len(labels) / MAX_TICKS))
    chars = max(3, int((every * cell_px - 8) // avg)) if horizontal else LABEL_CHARS
    return [(i + 0.5, _elide(str(labels[i]), chars)) for i in range(0, len(labels), every)]


def label_font(compact: bool = False) -> QtGui.QFont:
    """The font of the row/column labels: the application's, or COMPACT_FONT of it in a compact
    panel (a step that does not fit its pane otherwise: smaller cells, values hidden first)."""
    font = QtGui.QFont()
    if compact:
        if font.pointSizeF() > 0:
            font.setPointSizeF(font.pointSizeF() * COMPACT_FONT)
        else:
            font.setPixelSize(max(7, round(font.pixelSize() * COMPACT_FONT)))
    return font


def label_cell(fm: QtGui.QFontMetrics | None = None, compact: bool = False) -> int:
    """The smallest cell (px) that holds one label per row (or rotated column): a compact panel's
    labels one pixel apart (:func:`_fitted_ticks` keeps them one label a cell)."""
    fm = fm or QtGui.QFontMetrics(label_font(compact))
    return fm.height() + (1 if compact else 2)


def _widest(labels, compact: bool = False) -> int:
    """The widest elided label (px) in the labels' font (:func:`label_font`)."""
    return _widest_in(tuple(labels), label_font(compact).toString())


def row_label_width(data: MatrixData, compact: bool = False) -> int:
    """The room (px) of a map's row labels and row-axis title (the left axis' fixed width)."""
    line = QtGui.QFontMetrics(QtGui.QFont()).height()
    return _widest(data.row_labels, compact) + 10 + (line + 2 if data.row_axis else 0)


@functools.lru_cache(maxsize=256)
def _widest_in(labels: tuple, font: str) -> int:
    """_widest in this font (QFont.toString): measured once per labels and font (a redraw asks
    ~6 times per map; 12 heads measured 1,000 texts per parameter change)."""
    qfont = QtGui.QFont()
    qfont.fromString(font)
    fm = QtGui.QFontMetrics(qfont)
    return max((fm.horizontalAdvance(_elide(str(t), LABEL_CHARS)) for t in labels), default=0)


def prints_values(data: MatrixData) -> bool:
    """Whether the panel prints the values in its cells (small maps, not thumbnails)."""
    rows, cols = data.shape
    if data.kind == "ids" and rows <= 2 and 0 < cols <= MAX_TICKS:    # a row of token ids: the numbers are the point
        return not is_thumbnails(data)
    return (rows <= MAX_TEXT_CELLS and cols <= MAX_TEXT_CELLS and rows * cols > 0
            and not is_thumbnails(data))


def is_thumbnails(data: MatrixData) -> bool:
    """Many heads side by side are drawn as thumbnails: no values, thinned labels, the grid
    fits its area; a click on one opens that head large."""
    return len(data.maps) >= THUMBNAIL_MAPS


def value_chars(data: MatrixData) -> int:
    """Characters of the longest value the cells print ("−190.9510": 9; "0.2029": 6). A map that
    prints no values (a big one, thumbnails) is not read: 6 (a 1024-token step's 12 heads would
    take ~35 ms of the UI thread to scan)."""
    if not prints_values(data):
        return 6
    if data.kind == "binary":
        return 1
    if data.kind == "ids":
        return max((len(str(int(v))) for m in data.maps for v in np.asarray(m.values).ravel() if math.isfinite(v)),
                   default=1)
    if data.kind == "diff":
        return 8
    lo, hi = math.inf, -math.inf
    for m in data.maps:
        v = np.asarray(m.values, dtype=np.float64)
        fin = v[np.isfinite(v)]
        if fin.size:
            lo, hi = min(lo, float(fin.min())), max(hi, float(fin.max()))
    if lo > hi:
        return 6
    return max(len(f"{lo:.4f}"), len(f"{hi:.4f}"), 6)


def text_factor(data: MatrixData) -> float:
    """Text width per pixel of font size for the longest value (~0.62 px a character)."""
    return 0.62 * value_chars(data)


def min_cell(data: MatrixData, compact: bool = False) -> tuple[int, int]:
    """(width, height) in px below which a cell of ``data`` is not drawn: one label a row/column
    where there are ≤ MAX_TICKS of them (labels are never dropped), else 1 (a big map is
    downsampled, its labels thinned). Values are printed when the cells hold them
    (:meth:`MatrixPanel` hides them below MIN_TEXT_PX): a step's compared maps shrink and lose
    their printed values before they are stacked."""
    if is_thumbnails(data):
        return 1, 1
    rows, cols = data.shape
    lab = label_cell(compact=compact)
    return (lab if cols <= MAX_TICKS else 1), (lab if rows <= MAX_TICKS else 1)


def rotates_columns(data: MatrixData, compact: bool = False) -> bool:
    """Column labels are drawn rotated (reading upwards) when the widest one is wider than the
    smallest cell it gets: decided from the data, not the current size, so a resize never
    flips it (which would change the axis height and the cells again). Never on a map of more than
    MAX_TICKS columns: its labels are thinned anyway (every k-th, upright, the axis stays low)."""
    if len(data.col_labels) > MAX_TICKS:
        return False
    room = label_cell(compact=compact)   # the least cell it gets (a compared map shrinks to it, its values hidden)
    return _widest(data.col_labels, compact) + 6 > room


def square_cells(data: MatrixData) -> bool:
    rows, cols = data.shape
    return (not is_thumbnails(data) and rows > 0 and cols > 0
            and max(rows, cols) <= SQUARE_RATIO * min(rows, cols))


def title_width(text: str, points: float, bold: bool = False) -> int:
    """Width (px) of a pyqtgraph title (LabelItem) of ``points`` pt, scaled like present mode
    (:func:`gui.present.pt`): its text plus the text item's document margin. A layout never
    shrinks a title below this, so a panel narrower than its title pushes the colour bar out."""
    if not text:
        return 0
    return _title_width(text, pt(points), bold, QtGui.QFont().toString())


@functools.lru_cache(maxsize=512)
def _title_width(text: str, size: str, bold: bool, app_font: str) -> int:
    """title_width for a pyqtgraph size ("9.5pt") and the application font (QFont.toString)."""
    font = QtGui.QFont()
    font.fromString(app_font)
    font.setPointSizeF(float(size[:-2]))
    font.setBold(bold)
    return math.ceil(QtGui.QFontMetricsF(font).horizontalAdvance(text)) + 2 * 4 + 2


PANEL_FRAME = 2           # px of MatrixPanel's focus border, each side (set_focused)


def title_points(compact: bool = False) -> float:
    """The panel title's size (pt, before present mode's scaling): smaller in a compact panel."""
    return 9 if compact else 10


def panel_title(data: MatrixData) -> str:
    """The panel's title; thumbnails of heads say a click opens one (other grids, RoPE's positions,
    open nothing: a click inspects the cell)."""
    heads = is_thumbnails(data) and any(m.head is not None for m in data.maps)
    return data.title + ("   (click a head to open it)" if heads else "")


def panel_min_size(data: MatrixData, max_cols: int | None = None, compact: bool = False,
                   rowless: bool = False, barless: bool = False) -> tuple[int, int]:
    """(width, height) a MatrixPanel needs to draw ``data`` with cells of at least
    :func:`min_cell` (an estimate that errs on the large side: titles, axes, colour bar).
    No narrower than its titles: pyqtgraph's layout does not shrink a title, it pushes the
    colour bar out of the panel instead. Kept with ``data`` per column count and font (a step
    sizes each matrix several times while it is laid out). ``compact``: smaller labels and cells
    (:func:`label_font`); ``rowless``: its maps draw no row labels (the map to its left in the
    step's row has the same rows and draws them); ``barless``: no colour bar (the panel to its
    right has the same scale and draws it)."""
    font = QtGui.QFont()
    sizes = data.__dict__.setdefault("_min_sizes", {})
    key = (max_cols, font.toString(), pt(10), compact, rowless, barless)
    if key not in sizes:
        sizes[key] = _panel_min_size(data, max_cols, QtGui.QFontMetrics(font), compact, rowless, barless=barless)
    return sizes[key]


def panel_base_width(data: MatrixData, max_cols: int | None = None, compact: bool = False,
                     rowless: bool = False, barless: bool = False) -> int:
    """panel_min_size's width but for the panel's title: what its maps and colour bar need (panels
    sharing row labels are sized from it, so that their cells get the same room)."""
    return _panel_min_size(data, max_cols, QtGui.QFontMetrics(QtGui.QFont()), compact, rowless, False, barless)[0]


def _panel_min_size(data: MatrixData, max_cols: int | None, fm: QtGui.QFontMetrics, compact: bool = False,
                    rowless: bool = False, titled: bool = True, barless: bool = False) -> tuple[int, int]:
    n = len(data.maps)
    ncols, nrows = grid_shape(n, max_cols)
    rows, cols = data.shape
    cw, ch = min_cell(data, compact)
    lab = QtGui.QFontMetrics(label_font(compact)).height()
    line = fm.height()
    # the panel's title spans the grid and the bar (+ the layout's margins and the focus frame)
    title_w = title_width(panel_title(data), title_points(compact), bold=True) + 14 + 2 * PANEL_FRAME if titled else 0
    # a map's title (bold with "▶ " when its head is chosen: set_focused) sits over its cells
    map_title = max((title_width(f"▶ {m.title}", 9, bold=True) for m in data.maps if m.title), default=0)
    if is_thumbnails(data):
        thumb = COMPACT_THUMBNAIL if compact else THUMBNAIL_MIN
        per_w, per_h = max(thumb, map_title), thumb + line + 4
        return max(ncols * per_w + (80 - BAR_WIDTH if barless else 80), title_w), nrows * per_h + 2 * line + 20
    left = 2 if rowless else _widest(data.row_labels, compact) + 8 + line + 4        # tick labels, gap, axis label
    top = (_widest(data.col_labels, compact) + 4 if rotates_columns(data, compact) else lab) + 8 + line + 4
    title = line + 8 if any(m.title for m in data.maps) else 0
    big = COMPACT_BIG_MAP if compact else BIG_MAP_MIN
    cells_w = cols * cw if cols <= MAX_TICKS else min(cols, big)    # a big map is downsampled
    cells_h = rows * ch if rows <= MAX_TICKS else min(rows, big)
    map_w = max(cells_w, map_title) + left + 16     # + pyqtgraph's spacing and margins
    map_h = cells_h + top + title + 16
    width = max(ncols * map_w + (82 - BAR_WIDTH if barless else 82), title_w)   # + colour bar, its axis and caption (~70 px drawn)
    height = nrows * map_h + line + 28            # + the panel's title
    return int(width), int(height)


def bar_caption(data: MatrixData) -> str:
    """What the colour bar says about its scale (short: a one-row map's bar is ~70 px tall):
    which one it is (weights: "spread" from their smallest to their largest value, "per row", or
    the fixed 0–1; all-positive values: from their smallest, "min…max"), and whether the step's
    compared maps share it ("shared"; left out on a one- or two-row map, where it would be cut)."""
    shared = data.extra.get("shared_scale")
    tall = data.shape[0] > 2
    if data.extra.get("row_scaled"):
        return "per row ÷ max"
    if data.extra.get("spread_scale"):
        return "spread, shared" if shared and tall else "spread"
    if data.kind == "prob":
        return "shared 0–1" if shared else "fixed 0–1"
    if data.kind == "seq":
        return "min…max, shared" if shared and tall else "min…max"
    if shared:
        return "shared scale"
    return ""



def grid_shape(n: int, max_cols: int | None = None) -> tuple[int, int]:
    """(columns, rows) of the grid of ``n`` maps in one panel (at most ``max_cols`` columns:
    heads stacked when the step is narrow, rather than a sideways scroll)."""
    ncols = n if n <= 4 else math.ceil(math.sqrt(n))
    if max_cols:
        ncols = max(1, min(n, max_cols))      # (more than the default: a panel's ``grid_cols``)
    return ncols, math.ceil(n / max(ncols, 1))


def fit_grid_cols(data: MatrixData, width: int, compact: bool = False) -> int:
    """The most columns of maps (up to the default, or the panel's own ``extra["grid_cols"]``: stage
    6's rows of heads) whose panel fits ``width`` px, then as few as fill the same rows; 1 if none."""
    n = len(data.maps)
    ncols = data.extra.get("grid_cols") or grid_shape(n)[0]    # grid_cols: the panel's own choice
    while ncols > 1 and panel_min_size(data, ncols, compact)[0] > width:
        ncols -= 1
    return math.ceil(n / math.ceil(n / ncols)) if n else ncols    # as many rows, evened out: 16 heads 8 + 8, not 11 + 5


def _same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two arrays are views of the same memory, laid out alike (trace arrays are never
    written: the same memory holds the same numbers)."""
    if a is None or b is None:
        return a is b
    return a is b or (a.shape == b.shape and a.dtype == b.dtype and a.strides == b.strides
                      and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def same_drawing(a: MatrixData, b: MatrixData) -> bool:
    """Whether ``b`` draws exactly what ``a`` drew: the same arrays (not merely equal ones),
    labels, titles, colours and scale. Masks are compared by value when not the same array."""
    fields = ("key", "title", "symbol", "meaning", "row_labels", "col_labels", "row_axis", "col_axis",
              "kind", "levels", "template", "row_offset")
    if any(getattr(a, f) != getattr(b, f) for f in fields) or len(a.maps) != len(b.maps):
        return False
    if set(a.extra) != set(b.extra) or any(not _same_value(a.extra[k], b.extra[k]) for k in a.extra):
        return False
    for x, y in zip(a.maps, b.maps):
        if (x.title, x.index, x.head) != (y.title, y.index, y.head) or not _same_array(x.values, y.values):
            return False
        if (x.masked is None) != (y.masked is None) or (
                x.masked is not None and not _same_array(x.masked, y.masked) and not np.array_equal(x.masked, y.masked)):
            return False
    return True


def _same_value(x, y) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and _same_array(x, y)
    try:
        return bool(x == y)
    except (TypeError, ValueError):
        return False


def _tick_list(labels: tuple[str, ...]) -> list[tuple[float, str]]:
    step = max(1, math.ceil(len(labels) / MAX_TICKS))
    return [(i + 0.5, str(labels[i])) for i in range(0, len(labels), step)]
