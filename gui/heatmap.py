"""Labelled matrix heatmaps (pyqtgraph): one :class:`MatrixPanel` per matrix of a step.

A panel draws one :class:`~gui.matrices.MatrixData`: a grid of maps (one per head, or per
batch item) sharing one colour bar. Each map is a row-major ``ImageItem`` with the y axis
inverted (row 0 on top), token/dimension labels on the left and top axes, masked cells drawn
as NaN (transparent) over a hatched grey background, values printed in the cells of small
matrices, and a hover tooltip with the cell's labels, exact value and meaning.

Large matrices are drawn downsampled (every k-th row and column, k chosen so the image has
at most ``MAX_DISPLAY`` pixels a side) while hover still reads the exact values. Updates of a
panel with the same layout reuse the items and call ``setImage(autoLevels=False, levels=…)``.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pyqtgraph as pg
from pyqtgraph import functions as fn
from PySide6 import QtCore, QtGui, QtWidgets

from gui.matrices import MatrixData, format_value
from gui.present import pt

MAX_TEXT_CELLS = 12      # print values in the cells when rows and columns are both ≤ 12
MAX_DISPLAY = 512        # larger matrices are displayed downsampled
MIN_DISPLAY = 128        # … to about one sample per screen pixel, never fewer than this a side
BIG_MAP_MIN = 160        # px: the least a downsampled map (> MAX_TICKS rows or columns) is given
MAX_TICKS = 32           # label at most this many rows/columns per axis (every token up to 32)
MIN_TEXT_PX = 8          # cell values are never printed smaller than this
VALUE_CELL = 36          # a cell that prints "−0.1234" at MIN_TEXT_PX (see _cell_text_size)
THUMBNAIL_MAPS = 5       # a grid of this many maps or more is drawn as thumbnails
LABEL_CHARS = 14         # longer row/column labels are elided (the hover names them in full)
SQUARE_RATIO = 8         # cells are square unless the matrix is more oblong than this
HATCH = QtGui.QColor(150, 150, 150)


def colormap(kind: str) -> pg.ColorMap:
    """diverging (signed, symmetric levels), sequential (weights in [0, 1]) or binary (masks)."""
    if kind in ("signed", "diff"):
        return pg.colormap.get("CET-D1")
    if kind == "binary":
        return pg.ColorMap(pos=[0.0, 1.0], color=[(242, 242, 242), (49, 104, 142)])
    if kind == "ids":                      # numbers that are names (token ids): no colour scale
        return pg.ColorMap(pos=[0.0, 1.0], color=[(246, 246, 240), (246, 246, 240)])
    return pg.colormap.get("viridis")      # sequential: weights, all-positive values ("seq")


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
        need = min(widest + 6, 4 * avg + 8)       # room for at least "abc…" and a gap
    else:
        need = fm.height() + 1
    every = max(1, math.ceil(need / cell_px), math.ceil(len(labels) / MAX_TICKS))
    chars = max(3, int((every * cell_px - 8) // avg)) if horizontal else LABEL_CHARS
    return [(i + 0.5, _elide(str(labels[i]), chars)) for i in range(0, len(labels), every)]


def label_cell(fm: QtGui.QFontMetrics | None = None) -> int:
    """The smallest cell (px) that holds one label per row (or rotated column)."""
    fm = fm or QtGui.QFontMetrics(QtGui.QFont())
    return fm.height() + 2


def _widest(labels) -> int:
    """The widest elided label (px) in the application font."""
    return _widest_in(tuple(labels), QtGui.QFont().toString())


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
    """Characters of the longest value the cells print ("−190.9510": 9; "0.2029": 6)."""
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


def min_cell(data: MatrixData) -> tuple[int, int]:
    """(width, height) in px below which a cell of ``data`` is not drawn: one label a row/column
    where there are ≤ MAX_TICKS of them (labels are never dropped), else 1 (a big map is
    downsampled, its labels thinned). Values are printed when the cells hold them
    (:meth:`MatrixPanel` hides them below MIN_TEXT_PX): a step's compared maps shrink and lose
    their printed values before they are stacked."""
    if is_thumbnails(data):
        return 1, 1
    rows, cols = data.shape
    lab = label_cell()
    return (lab if cols <= MAX_TICKS else 1), (lab if rows <= MAX_TICKS else 1)


def rotates_columns(data: MatrixData) -> bool:
    """Column labels are drawn rotated (reading upwards) when the widest one is wider than the
    smallest cell it gets: decided from the data, not the current size, so a resize never
    flips it (which would change the axis height and the cells again)."""
    room = label_cell()       # the least cell it gets (a compared map shrinks to it, its values hidden)
    return _widest(data.col_labels) + 6 > room


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


def panel_title(data: MatrixData) -> str:
    return data.title + ("   (click a head to open it)" if is_thumbnails(data) else "")


def panel_min_size(data: MatrixData, max_cols: int | None = None) -> tuple[int, int]:
    """(width, height) a MatrixPanel needs to draw ``data`` with cells of at least
    :func:`min_cell` (an estimate that errs on the large side: titles, axes, colour bar).
    No narrower than its titles: pyqtgraph's layout does not shrink a title, it pushes the
    colour bar out of the panel instead. Kept with ``data`` per column count and font (a step
    sizes each matrix several times while it is laid out)."""
    font = QtGui.QFont()
    sizes = data.__dict__.setdefault("_min_sizes", {})
    key = (max_cols, font.toString(), pt(10))
    if key not in sizes:
        sizes[key] = _panel_min_size(data, max_cols, QtGui.QFontMetrics(font))
    return sizes[key]


def _panel_min_size(data: MatrixData, max_cols: int | None, fm: QtGui.QFontMetrics) -> tuple[int, int]:
    n = len(data.maps)
    ncols, nrows = grid_shape(n, max_cols)
    rows, cols = data.shape
    cw, ch = min_cell(data)
    line = fm.height()
    # the panel's title spans the grid and the bar (+ the layout's margins and the focus frame)
    title_w = title_width(panel_title(data), 10, bold=True) + 14 + 2 * PANEL_FRAME
    # a map's title (bold with "▶ " when its head is chosen: set_focused) sits over its cells
    map_title = max((title_width(f"▶ {m.title}", 9, bold=True) for m in data.maps if m.title), default=0)
    if is_thumbnails(data):
        per_w, per_h = max(64, map_title), 64 + line + 4
        return max(ncols * per_w + 80, title_w), nrows * per_h + 2 * line + 20
    left = _widest(data.row_labels) + 8 + line + 4        # tick labels, gap, axis label
    top = (_widest(data.col_labels) + 4 if rotates_columns(data) else line) + 8 + line + 4
    title = line + 8 if any(m.title for m in data.maps) else 0
    cells_w = cols * cw if cols <= MAX_TICKS else min(cols, BIG_MAP_MIN)    # a big map is downsampled
    cells_h = rows * ch if rows <= MAX_TICKS else min(rows, BIG_MAP_MIN)
    map_w = max(cells_w, map_title) + left + 16     # + pyqtgraph's spacing and margins
    map_h = cells_h + top + title + 16
    width = max(ncols * map_w + 82, title_w)          # + colour bar, its axis and caption (~70 px drawn)
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


def row_scaled(img: np.ndarray) -> np.ndarray:
    """Each row divided by its largest (finite, unmasked) value: auto-contrast for weights, so a
    long causal map shows each row's structure instead of one flat triangle."""
    with np.errstate(invalid="ignore", divide="ignore"):
        top = np.nanmax(np.where(np.isfinite(img), img, np.nan), axis=1, keepdims=True) if img.size else img
        out = img / np.where(top > 0, top, 1.0)
    return out.astype(img.dtype, copy=False)


def grid_shape(n: int, max_cols: int | None = None) -> tuple[int, int]:
    """(columns, rows) of the grid of ``n`` maps in one panel (at most ``max_cols`` columns:
    heads stacked when the step is narrow, rather than a sideways scroll)."""
    ncols = n if n <= 4 else math.ceil(math.sqrt(n))
    if max_cols:
        ncols = max(1, min(n, max_cols))      # (more than the default: a panel's ``grid_cols``)
    return ncols, math.ceil(n / max(ncols, 1))


def fit_grid_cols(data: MatrixData, width: int) -> int:
    """The most columns of maps (up to the default, or the panel's own ``extra["grid_cols"]``: stage
    6's rows of heads) whose panel fits ``width`` px; 1 if none."""
    ncols = data.extra.get("grid_cols") or grid_shape(len(data.maps))[0]    # grid_cols: the panel's own choice
    while ncols > 1 and panel_min_size(data, ncols)[0] > width:
        ncols -= 1
    return ncols


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


class _Axis(pg.AxisItem):
    """pyqtgraph's axis, keeping its bounding rect until its geometry changes: Qt asks for it
    ~3 times per axis and paint, 24 axes for 12 heads.

    (Not drawn through a Qt item cache: DeviceCoordinateCache saved ~1.5 ms a 12-head redraw
    but, at some window sizes, drew the axis line's end pixel differently.)"""

    def __init__(self, orientation: str):
        self._geometry = None
        self._rect = QtCore.QRectF()
        self.rotated = False              # top axis: labels drawn reading upwards
        self.data_end: float | None = None   # where the matrix ends (columns/rows); None: whole axis
        self.drawn: list[tuple[QtCore.QRectF, str]] = []   # tick texts last painted (item coords)
        super().__init__(orientation)

    def set_rotated(self, rotated: bool, height: int | None) -> None:
        """Rotate the tick labels of a top axis; ``height``: the room they need (None: auto)."""
        if rotated != self.rotated or height != self.fixedHeight:
            self.rotated = rotated
            self.setHeight(height)
            self.picture = None
            self.update()

    def data_span(self) -> tuple[float, float]:
        """The part of the axis (0..1 from its left/top end) beside the matrix's cells: a square
        map leaves spare room after its cells (see _AnchoredViewBox), where no line or title goes."""
        lo, hi = sorted(self.range)
        if self.data_end is None or hi <= lo:
            return 0.0, 1.0
        span = hi - lo
        a = min(max((0.0 - lo) / span, 0.0), 1.0)
        b = min(max((self.data_end - lo) / span, 0.0), 1.0)
        return a, max(a, b)

    def set_data_end(self, end: float | None) -> None:
        if end != self.data_end:
            self.data_end = end
            self.picture = None
            self.resizeEvent()
            self.update()

    def linkedViewChanged(self, view, newRange=None) -> None:
        super().linkedViewChanged(view, newRange)
        if self.data_end is not None:
            self.resizeEvent()           # the axis title stays centred over the cells

    def resizeEvent(self, ev=None) -> None:
        super().resizeEvent(ev)
        if self.label is None or self.data_end is None:
            return
        # pyqtgraph centres the title on the whole axis: centre it on the cells instead
        a, b = self.data_span()
        br = self.label.boundingRect()
        pos = self.label.pos()
        if self.orientation == "top":
            pos.setX(int(self.size().width() * (a + b) / 2 - br.width() / 2))
        elif self.orientation == "left":     # the map's y axis is inverted: 0 at the top
            pos.setY(int(self.size().height() * (a + b) / 2 + br.width() / 2))
        self.label.setPos(pos)

    _lines = None               # [(pen, [QLineF, …]), …]: all the last picture drew (no text)

    def paint(self, p, opt, widget=None) -> None:
        # An axis without values (a thumbnail's) is its line and its ticks (zero-length: a dot
        # each): drawn directly, one drawLines per pen, not by replaying pyqtgraph's QPicture of
        # them (24 replays were ~1.2 ms of a 12-head repaint). The same primitives, the same pixels.
        if self.picture is not None and self._lines is not None:
            p.setRenderHint(p.RenderHint.Antialiasing, False)
            for pen, lines in self._lines:
                p.setPen(pen)
                p.drawLines(lines)
            return
        super().paint(p, opt, widget)

    def _note_lines(self, axisSpec, tickSpecs) -> None:
        groups: list[tuple] = []
        for pen, p1, p2 in [axisSpec, *tickSpecs]:
            if not groups or groups[-1][0] != pen:
                groups.append((pen, []))
            groups[-1][1].append(QtCore.QLineF(p1, p2))
        self._lines = groups

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs) -> None:
        self._lines = None
        if self.data_end is not None:
            # the axis line runs beside the cells only, not over the spare room after them
            pen, p1, p2 = axisSpec
            a, b = self.data_span()
            if self.orientation == "top":
                x0, x1 = sorted((p1.x(), p2.x()))
                p1, p2 = QtCore.QPointF(x0 + a * (x1 - x0), p1.y()), QtCore.QPointF(x0 + b * (x1 - x0), p2.y())
            elif self.orientation == "left":
                y0, y1 = sorted((p1.y(), p2.y()))
                p1, p2 = QtCore.QPointF(p1.x(), y0 + a * (y1 - y0)), QtCore.QPointF(p2.x(), y0 + b * (y1 - y0))
            axisSpec = (pen, p1, p2)
        if not self.rotated:
            super().drawPicture(p, axisSpec, tickSpecs, textSpecs)
            self.drawn = [(QtCore.QRectF(rect), text) for rect, _flags, text in textSpecs]
            if not textSpecs:
                self._note_lines(axisSpec, tickSpecs)
            return
        super().drawPicture(p, axisSpec, tickSpecs, [])
        # pyqtgraph lays labels out upright (and drops those wider than their room): draw
        # each one turned 90°, its end at the axis line, centred on its column
        lo, hi = self.range
        span = (hi - lo) or 1.0
        own = self.mapRectFromParent(self.geometry())   # the bounding rect reaches past it
        width = own.width()
        bottom = own.bottom() - 7          # clear of the first row's label, centred on its row
        fm = QtGui.QFontMetrics(self.style.get("tickFont") or QtGui.QFont())
        p.setPen(self.textPen())
        drawn = []
        h = fm.height()
        for level in (self._tickLevels or []):
            spots = [(own.left() + (x - lo) / span * width, text) for x, text in level if lo <= x <= hi]
            for n, (cx, text) in enumerate(spots):
                w = fm.horizontalAdvance(text)
                # a label on a 1 px column at the edge is moved in to stay whole, or left out
                # when moved it would touch its neighbour (the hover still names the column)
                inside = min(max(cx, own.left() + h / 2), own.right() - h / 2)
                if inside != cx:
                    near = [spots[i][0] for i in (n - 1, n + 1) if 0 <= i < len(spots)]
                    if any(abs(inside - c) < h + 1 for c in near):
                        continue
                    cx = inside
                p.save()
                p.translate(cx, bottom)
                p.rotate(-90)
                p.drawText(QtCore.QRectF(0, -h / 2, w + 2, h),
                           int(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter), text)
                p.restore()
                drawn.append((QtCore.QRectF(cx - h / 2, bottom - w, h, w), text))
        self.drawn = drawn

    def setStyle(self, **kwargs) -> None:
        self._geometry = None             # the tick length and label overlap change the rect
        super().setStyle(**kwargs)

    def boundingRect(self) -> QtCore.QRectF:
        # pyqtgraph's rect depends on the geometry only (fixed style, no grid)
        geometry = self.geometry()
        if geometry != self._geometry:
            self._geometry = geometry
            self._rect = super().boundingRect()
        return QtCore.QRectF(self._rect)


def argb_words(lut) -> np.ndarray | None:
    """A pyqtgraph lookup table (uint8, n × 3 or opaque n × 4, n ≤ 256) as ARGB32 words; None for
    anything else (translucent colours: pyqtgraph's own render draws those)."""
    if (isinstance(lut, np.ndarray) and lut.dtype == np.uint8 and lut.ndim == 2
            and lut.shape[1] in (3, 4) and 0 < lut.shape[0] <= 256
            and (lut.shape[1] == 3 or bool((lut[:, 3] == 255).all()))):
        rgb = lut[:, :3].astype(np.uint32)
        return np.uint32(0xFF000000) | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    return None


@functools.lru_cache(maxsize=8)
def colour_table(kind: str) -> np.ndarray | None:
    """The ARGB32 words an image of this kind is looked up in (the colour bar gives each image
    ``colormap(kind)``'s 256-entry table): read-only."""
    table = argb_words(colormap(kind).getLookupTable(nPts=256))
    if table is not None:
        table.setflags(write=False)
    return table


def argb_image(img: np.ndarray, lo: float, hi: float, lut32: np.ndarray) -> np.ndarray:
    """A float map (NaN: transparent) as ARGB32 words: the colour indices of pyqtgraph's
    ``rescaleData`` ((x − lo) · n / (hi − lo), clipped, the same float arithmetic) looked up in
    ``lut32``. Pure numpy: the trace worker runs it ahead of the window (``prerender``)."""
    n = lut32.shape[0]
    rng = (hi - lo) or 1.0
    work = np.float32 if np.can_cast(img.dtype, np.float32) else np.float64
    y = np.array(img, dtype=work, order="C")  # rescaleData: (x - offset) * scale, clipped
    y -= lo
    y *= float(n / rng)
    np.clip(y, 0, n - 1, out=y)
    nan = np.isnan(y)
    has_nan = bool(nan.any())
    if has_nan:
        y[nan] = 0
    argb = lut32[y.astype(np.uint8)]
    if has_nan:
        argb[nan] = 0                          # transparent
    return argb


# (rows, cols, maps of the panel) -> the stride the window last drew such a map at: the trace
# worker pools the next trace's weights at it ahead (prerender), off the window's thread
_LAST_STRIDE: dict[tuple[int, int, int], int] = {}


def prerender(data: MatrixData) -> None:
    """Make what the window draws of ``data``'s maps now (the float image and its ARGB words,
    kept in the display cache): on the trace worker, before the result reaches the window.
    Only maps drawn whole whatever the panel's size (≤ MIN_DISPLAY a side: stride 1); weights
    drawn smaller are pooled ahead (MapData.pooled) at the stride the window last drew them at
    (12 heads × 1024 tokens: ~14 ms the window's thread no longer spends)."""
    if data.kind == "prob":
        for m in data.maps:
            stride = _LAST_STRIDE.get((*m.values.shape, len(data.maps))) if m.source is not None else None
            if stride and stride > 1:
                m.pooled(stride)
    if data.extra.get("row_scaled"):
        return
    table = colour_table(data.kind)
    if table is None:
        return
    lo, hi = float(data.levels[0]), float(data.levels[1])
    what = rendered_key(data)
    todo = [m for m in data.maps if m.source is not None and 0 < m.values.size
            and max(m.values.shape) <= MIN_DISPLAY and m.found(what) is None]
    if len({m.values.shape for m in todo}) == 1 and len(todo) > 1:
        # the heads' maps (all one shape) looked up together: one pass of numpy calls, not 12
        words = argb_image(np.stack([m.display(1) for m in todo]), lo, hi, table)   # (n, R, C)
        for m, w in zip(todo, words):
            m.keep(what, w)                                     # each (R, C), C-contiguous
        return
    for m in todo:
        img = m.display(1)
        m.kept(what, lambda img=img: argb_image(img, lo, hi, table))


def rendered_key(data: MatrixData) -> tuple:
    """Under what a map's ARGB words for ``data``'s levels and colours are kept (MapData.kept)."""
    return ("argb", float(data.levels[0]), float(data.levels[1]), data.kind)


class _Image(pg.ImageItem):
    """pyqtgraph's ImageItem, with a shorter way from a float map to the QImage it paints.

    pyqtgraph maps a float image with NaNs to an RGBA8888 QImage through generic code (~0.1 ms
    a map, more for big ones). Here the same colour indices (the same float arithmetic as
    ``pyqtgraph.functions.rescaleData``) look up an ARGB32 table directly, NaN cells fully
    transparent: the same colour in every cell. The image is premultiplied (with opaque colours
    and transparent NaN cells the words are the same): QPainter scales it through its fast path,
    ~12× faster than a non-premultiplied one (12 maps of 64 × 64 drawn 100 px wide: 1.4 →
    0.1 ms a repaint); its nearest-neighbour sampling may put a cell edge one pixel away from
    where pyqtgraph's own path puts it. Anything else (other image types, translucent colour
    maps) goes through pyqtgraph's own render.
    """

    _lut_key = None
    _lut32 = None
    _rendered = None            # (ARGB words, levels, table) made ahead for the image just set

    def _argb_lut(self, lut) -> np.ndarray | None:
        if self._lut_key is not lut:             # ImageItem.setLookupTable stores a new array
            self._lut_key, self._lut32 = lut, argb_words(lut)
        return self._lut32

    def set_rendered(self, argb: np.ndarray, levels, table: np.ndarray) -> None:
        """The image just given to setImage, already looked up (``argb_image``, e.g. on the trace
        worker): used by the next render if the levels and colour table are still these."""
        self._rendered = (argb, (float(levels[0]), float(levels[1])), table)

    def render(self) -> None:
        # an exception out of paint() takes the whole app down (shiboken): fall back instead
        try:
            if self._render_argb():
                return
        except Exception:       # pyqtgraph's own path below still draws
            pass
        super().render()

    def _render_argb(self) -> bool:
        img, levels = self.image, self.levels
        if (img is None or img.ndim != 2 or img.size == 0 or img.dtype.kind != "f" or levels is None
                or np.ndim(levels) != 1 or len(levels) != 2 or self.autoDownsample
                or self.axisOrder != "row-major"):
            return False
        lut32 = self._argb_lut(self.lut)
        if lut32 is None:
            return False
        lo, hi = float(levels[0]), float(levels[1])
        ready, self._rendered = self._rendered, None
        if (ready is not None and ready[1] == (lo, hi) and ready[0].shape == img.shape
                and np.array_equal(ready[2], lut32)):
            argb = ready[0]
        else:
            argb = argb_image(img, lo, hi, lut32)
        self.qimage = fn.ndarray_to_qimage(argb, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        self._processingBuffer = None
        self._displayBuffer = None
        self._renderRequired = False
        self._unrenderable = False
        return True


class _CellTexts(QtWidgets.QGraphicsItem):
    """The values printed in the cells of one small map, all painted by this one item.

    Looks exactly like one pyqtgraph ``TextItem(anchor=(0.5, 0.5))`` per cell (a
    QGraphicsTextItem: its text laid out by a QTextLayout, drawn in screen pixels centred on
    the cell; the document's margins cancel out), but Qt visits one item instead of up to
    144: 12 heads × 36 TextItems cost ~35 ms a redraw, their setText/setPos and per-item
    paint calls.
    """

    def __init__(self):
        super().__init__()
        self.setZValue(1)                 # above the image, below the lines between heads
        self._shape = (0, 0)
        self._font = QtGui.QFont()
        self._cells: list[tuple[str, QtGui.QColor]] = []
        self._layouts: list | None = None  # (QTextLayout, text width, line height) per cell
        self.drawn: list[tuple[QtCore.QRectF, str]] = []

    @property
    def texts(self) -> list[str]:
        return [text for text, _color in self._cells]

    def set_shape(self, rows: int, cols: int) -> None:
        if (rows, cols) != self._shape:
            self.prepareGeometryChange()
            self._shape = (rows, cols)

    def set_cells(self, cells: list[tuple[str, QtGui.QColor]]) -> None:
        """(text, colour) per cell, row by row."""
        if cells != self._cells:
            self._cells = cells
            self._layouts = None
            self.update()

    def set_pixel_size(self, px: int) -> None:
        if self._font.pixelSize() != px:
            font = QtGui.QFont()
            font.setPixelSize(px)
            self._font = font
            self._layouts = None
            self.update()

    def font(self) -> QtGui.QFont:
        return self._font

    def boundingRect(self) -> QtCore.QRectF:
        rows, cols = self._shape          # in cells; a centred text stays within half a cell
        return QtCore.QRectF(-0.5, -0.5, cols + 1.0, rows + 1.0)

    def _layout(self, text: str) -> tuple:
        key = (self._font.pixelSize(), text)
        found = _LAYOUTS.get(key)
        if found is None:
            layout = QtGui.QTextLayout(text, self._font)
            layout.setCacheEnabled(True)
            layout.beginLayout()
            line = layout.createLine()
            layout.endLayout()
            found = (layout, line.naturalTextWidth(), line.height())
            if len(_LAYOUTS) >= 4096:
                _LAYOUTS.clear()
            _LAYOUTS[key] = found
        return found

    def paint(self, painter, option, widget=None) -> None:
        if not self._cells or not self._shape[1]:
            return
        if self._layouts is None:
            self._layouts = [self._layout(text) for text, _color in self._cells]
        to_device = painter.transform()
        cols = self._shape[1]
        painter.save()
        painter.resetTransform()          # text in screen pixels, as TextItem draws it
        drawn = []
        for n, ((text, color), (layout, width, height)) in enumerate(zip(self._cells, self._layouts)):
            i, j = divmod(n, cols)
            c = to_device.map(QtCore.QPointF(j + 0.5, i + 0.5))
            painter.setPen(color)
            layout.draw(painter, QtCore.QPointF(c.x() - width / 2, c.y() - height / 2))
            drawn.append((QtCore.QRectF(c.x() - width / 2, c.y() - height / 2, width, height), text))
        self.drawn = drawn                # (device rect, text) last painted: the layout test reads them
        painter.restore()


# A pure memo (beside gui.display_cache's): (pixel size, text) -> laid-out text, keyed on
# immutable values, bounded (emptied at 4096 entries); the layouts are only drawn, never changed.
_LAYOUTS: dict[tuple[int, str], tuple] = {}    # "0" fills masked cells
_MASKED_TEXT = QtGui.QColor(70, 70, 70)
MARK_PENS = {"source": (QtGui.QColor(255, 140, 0), 2.5),     # cells that feed the clicked one
             "clicked": (QtGui.QColor(47, 111, 208), 3.5),   # the clicked cell
             "hover": (QtGui.QColor(0, 160, 70), 2.0),       # the row/column the hovered cell is made of
             "hovered": (QtGui.QColor(0, 160, 70), 3.0)}     # the hovered cell
_LIGHT_TEXT = QtGui.QColor(255, 255, 255)
_DARK_TEXT = QtGui.QColor(0, 0, 0)


class _AnchoredViewBox(pg.ViewBox):
    """A view box whose aspect lock widens the view range after the target, not around it.

    pyqtgraph keeps square cells in a roomy panel by widening the range on both sides, which
    centres the cells and leaves an empty band between the row labels and the first column
    (or the column labels and the first row). Here the range keeps its start, so the cells
    sit against the left and top axes and the spare room lies to the right or below; the
    scale (pixels per cell) is pyqtgraph's own."""

    def updateViewRange(self, forceX=False, forceY=False) -> None:
        before = [list(r) for r in self.state["viewRange"]]
        blocked = self.blockSignals(True)     # announce the anchored range only, once
        try:
            super().updateViewRange(forceX, forceY)
        finally:
            self.blockSignals(blocked)
        view = self.state["viewRange"]
        if self.state["aspectLocked"] is not False:
            for ax in (0, 1):
                start = self.state["targetRange"][ax][0]
                width = view[ax][1] - view[ax][0]
                if width > self.state["targetRange"][ax][1] - start:   # widened: keep the start
                    view[ax] = [start, start + width]
        changed = [abs(view[ax][0] - before[ax][0]) > abs(view[ax][1] - view[ax][0]) * 1e-9
                   or abs(view[ax][1] - before[ax][1]) > abs(view[ax][1] - view[ax][0]) * 1e-9
                   for ax in (0, 1)]
        if any(changed):
            self._matrixNeedsUpdate = True
            self.update()
            if changed[0]:
                self.sigXRangeChanged.emit(self, tuple(view[0]))
            if changed[1]:
                self.sigYRangeChanged.emit(self, tuple(view[1]))
            self.sigRangeChanged.emit(self, view, changed)


class _Title(pg.LabelItem):
    """A map's title, centred over its cells rather than over the whole plot (square cells may
    leave spare room after them: see _AnchoredViewBox)."""

    def __init__(self, axis: _Axis, parent):
        self.axis = axis                  # the top axis: where the cells lie along the plot
        super().__init__("", size="11pt", parent=parent)

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        if getattr(self, "axis", None) is None or self.axis.data_end is None:
            return
        a, b = self.axis.data_span()
        rect, text = self.rect(), self.itemRect()
        # centred on the cells, but kept whole inside the plot's width
        left = rect.left() + rect.width() * (a + b) / 2 - text.width() / 2
        left = min(max(left, rect.left()), rect.right() - text.width())
        self.item.moveBy(left - text.left(), 0)

    def follow(self, *_args) -> None:
        """The view range changed: the cells may now lie elsewhere along the plot."""
        self.resizeEvent(None)


class _Map:
    """One heatmap: plot, image, hatched background and cell texts."""

    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int):
        self.plot: pg.PlotItem = layout.addPlot(row=row, col=col, axisItems={"left": _Axis("left"), "top": _Axis("top")},
                                            viewBox=_AnchoredViewBox())
        p = self.plot
        p.invertY(True)
        p.setMouseEnabled(x=False, y=False)
        p.setMenuEnabled(False)
        p.hideButtons()
        p.showAxis("top")
        p.hideAxis("bottom")
        # pyqtgraph's title label, swapped for one that follows the cells (same layout cell)
        p.layout.removeItem(p.titleLabel)
        if p.titleLabel.scene() is not None:
            p.titleLabel.scene().removeItem(p.titleLabel)
        p.titleLabel = _Title(p.getAxis("top"), p)
        p.layout.addItem(p.titleLabel, 0, 1)
        p.setTitle(None)
        p.vb.sigRangeChanged.connect(p.titleLabel.follow)
        for name in ("left", "top"):
            ax = p.getAxis(name)
            ax.setPen(pg.mkPen(60, 60, 60))
            ax.setTextPen(pg.mkPen(20, 20, 20))
            ax.setStyle(tickLength=0)
        self.hatch = QtWidgets.QGraphicsRectItem(0, 0, 1, 1)
        self.hatch.setBrush(QtGui.QBrush(HATCH, QtCore.Qt.BrushStyle.BDiagPattern))
        self.hatch.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
        self.hatch.setZValue(-10)
        # drawn from a pixmap kept until the map is resized: a pattern brush over 12 maps cost
        # ~1.5 ms of every repaint (the hatching's phase may shift a pixel: it is a texture)
        self.hatch.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        p.addItem(self.hatch)
        self.image = _Image(axisOrder="row-major")
        p.addItem(self.image)
        self.cells: _CellTexts | None = None     # the values in the cells (small maps only)
        self._ncells = 0                          # how many cells print their value
        self.separators: list[QtWidgets.QGraphicsLineItem] = []
        self.shape = (0, 0)
        self._range_for = None                # (rows, cols, square) the view's range was set for
        self._image_placed = None             # (rows, cols, image shape) the image was scaled for
        self.stride = 1
        self.labels: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        self._texts: tuple = ()
        self._widest: int | None = None       # widest column label in pixels (cached)
        self._ticks: dict[str, list] = {}     # ticks last set per axis (setTicks re-renders the axis)
        self._fitted = None                   # (view pixel size, labels, widest) the ticks were fitted to
        self._text_size: tuple | None = None  # (pixel size, visible) the cell texts last got
        self._pending_texts = None            # (data, k, cmap) whose cell texts wait until readable
        self._shown = None                    # (data, k) drawn (redrawn when a resize changes the stride)
        self._look = None                     # what set_data laid the map out for, bar its numbers
        self._setting = False
        self._square = False                  # cells kept square (aspect locked)
        self._text_factor = 3.9               # text width per px of font size (longest value)
        self.thumbnail = False                # one of many heads: no values, a click opens it
        p.vb.sigTransformChanged.connect(self.fit_text)   # after a resize has updated the view

    def _stride(self, rows: int, cols: int) -> int:
        """Every how many rows/columns to draw: about one sample per screen pixel of the map
        (12 maps of 1024² on screen are ~200 pixels wide each), at most MAX_DISPLAY a side."""
        limit = MAX_DISPLAY
        vb = self.plot.vb
        side = max(vb.width(), vb.height())
        views = vb.scene().views() if vb.scene() is not None else []
        if side > 16 and views:
            limit = min(MAX_DISPLAY, max(MIN_DISPLAY, int(side * views[0].devicePixelRatioF()) + 1))
        return max(1, math.ceil(max(rows, cols) / limit))

    def _set_image(self, data: MatrixData, k: int) -> None:
        m = data.maps[k]
        rows, cols = m.values.shape
        self._shown = (data, k)
        self.stride = self._stride(rows, cols)
        if self.stride > 1 and data.kind == "prob":   # weights: each sample the max of its block (gui.pooling)
            _LAST_STRIDE[(rows, cols, len(data.maps))] = self.stride
            img = m.pooled(self.stride)
        else:
            img = m.display(self.stride)
        ready = None
        if data.extra.get("row_scaled"):
            img = row_scaled(img)
        elif self.stride == 1:                              # looked up ahead by the trace worker?
            ready = m.found(rendered_key(data))
        # the hatching shows through masked and undefined (nan) cells only: none, no hatching to draw
        self.hatch.setVisible(bool(np.isnan(img).any()))
        self.image.setImage(img, autoLevels=False, levels=data.levels)
        if ready is not None:
            self.image.set_rendered(ready, data.levels, colour_table(data.kind))
        # setRect scales the image to the cells: again when the cells or the image's size (its
        # stride) change, not on every redraw (it re-lays the image out)
        placed = (rows, cols, img.shape)
        if placed != self._image_placed:
            self._image_placed = placed
            self.image.setRect(QtCore.QRectF(0, 0, cols, rows))

    def set_data(self, data: MatrixData, k: int, cmap: pg.ColorMap) -> None:
        m = data.maps[k]
        rows, cols = m.values.shape
        self._setting = True
        try:
            self._set_image(data, k)
        finally:
            self._setting = False
        # everything but the image follows from this (cell texts aside, which print the values):
        # the same again (a parameter change on the same step) leaves the map's axes, titles,
        # separators and ticks as they are (~0.1 ms a map, 12 heads)
        look = (rows, cols, len(data.maps), m.title, data.row_axis, data.col_axis, data.extra.get("head_width"),
                data.row_labels, data.col_labels, square_cells(data), pt(9))
        if look == self._look and not self._ncells and not prints_values(data):
            return
        self._look = look
        square = square_cells(data)
        if self.shape != (rows, cols) or square != self._square:
            self.hatch.setRect(0, 0, cols, rows)
            self._square = square
            self.plot.vb.setAspectLocked(square, 1.0)
            # square cells may leave room after them: the axis lines and titles stay beside the cells
            self.plot.getAxis("top").set_data_end(cols if square else None)
            self.plot.getAxis("left").set_data_end(rows if square else None)
            self.plot.disableAutoRange()
            self.shape = (rows, cols)
        # whenever the shape or the lock changes: an aspect-locked view widens its target range
        # on resizes, which would stay when the next matrix of the same shape is not locked.
        # Not for the next values of the same matrix (a parameter change): setRange always
        # re-lays the view out and refits its ticks and texts (~0.3 ms a map).
        if self._range_for != (rows, cols, square):
            self._range_for = (rows, cols, square)
            self.plot.vb.setRange(xRange=(0, cols), yRange=(0, rows), padding=0)
        self.thumbnail = thumb = is_thumbnails(data)
        fm = QtGui.QFontMetrics(QtGui.QFont())
        rotated = rotates_columns(data) and not thumb
        top = self.plot.getAxis("top")
        left = self.plot.getAxis("left")
        for ax in (top, left):              # thumbnails: the map and its title only (hover names cells)
            if ax.style["showValues"] == thumb:
                ax.setStyle(showValues=not thumb)
                self._fitted = None
        height = (2 if thumb else _widest(data.col_labels) + 14 + (fm.height() if data.col_axis else 0)
                  if rotated else None)
        if rotated != top.rotated or height != top.fixedHeight:
            top.set_rotated(rotated, height)
            self._fitted = None
        # the row labels' room, fixed from the data: pyqtgraph widens an axis only after a paint
        # has dropped the labels that did not fit
        width = 2 if thumb else _widest(data.row_labels) + 10 + (fm.height() + 2 if data.row_axis else 0)
        if left.fixedWidth != width:
            left.setWidth(width)
            self._fitted = None
        # setTitle/setLabel re-layout the plot: only call them when the text changes
        thumb = is_thumbnails(data)
        texts = (m.title, data.row_axis, data.col_axis, thumb)
        if texts != self._texts:
            self.plot.setTitle(m.title or None, size=pt(9), color=m.title_colour or "#333")
            self._title_key = None            # MatrixPanel.set_focused styles it again
            self.plot.getAxis("left").setLabel(None if thumb else data.row_axis, color="#555")
            self.plot.getAxis("top").setLabel(None if thumb else data.col_axis, color="#555")
            self._texts = texts
        if (data.row_labels, data.col_labels) != self.labels:
            self.labels = (data.row_labels, data.col_labels)
            self._widest = None
            self.plot.getAxis("left").setTicks([_tick_list(data.row_labels)])
            self._ticks.pop("left", None)
        self._set_separators(data.extra.get("head_width"), rows, cols)
        self._set_texts(data, k, cmap)
        self.fit_text()

    def _set_separators(self, width: int | None, rows: int, cols: int) -> None:
        """Vertical lines between heads where a matrix holds the heads side by side."""
        for line in self.separators:
            self.plot.removeItem(line)
        self.separators = []
        if not width or width >= cols:
            return
        pen = QtGui.QPen(QtGui.QColor(20, 20, 20), 3)
        pen.setCosmetic(True)
        for x in range(width, cols, width):
            line = QtWidgets.QGraphicsLineItem(x, 0, x, rows)
            line.setPen(pen)
            line.setZValue(5)
            self.plot.addItem(line)
            self.separators.append(line)

    @property
    def texts(self) -> list[str]:
        """The values printed in the cells (row by row; empty for big maps)."""
        return self.cells.texts if self.cells is not None and self._ncells else []

    def _set_texts(self, data: MatrixData, k: int, cmap: pg.ColorMap) -> None:
        m = data.maps[k]
        rows, cols = m.values.shape
        want = rows * cols if prints_values(data) else 0
        if want and self.cells is None:
            self.cells = _CellTexts()
            self.plot.addItem(self.cells)
        if want != self._ncells:
            self._text_size = None                # the texts get their font and visibility again
            self._ncells = want
        if not want:
            if self.cells is not None:
                self.cells.set_cells([])
                self.cells.setVisible(False)
            self._pending_texts = None
            return
        self.cells.set_shape(rows, cols)
        self._text_factor = text_factor(data)
        # Cells too small to print in (e.g. 12 heads side by side): fill the texts once a
        # resize makes them readable (fit_text), not on every redraw.
        self._pending_texts = (data, k, cmap)
        size = self._cell_text_size()
        if size is None or size >= MIN_TEXT_PX - 1:
            self._fill_texts()

    def _cell_text_size(self) -> int | None:
        """Pixel size cell texts fit in at the current view size (None: not laid out yet)."""
        px_w, px_h = self.plot.vb.viewPixelSize()
        if px_w <= 0 or px_h <= 0:
            return None
        return int(min(14, (1.0 / px_w - 3) / self._text_factor, 1.0 / px_h / 1.5))

    def _fill_texts(self) -> None:
        if self._pending_texts is None:
            return
        data, k, cmap = self._pending_texts
        self._pending_texts = None
        m = data.maps[k]
        lo, hi = data.levels
        span = (hi - lo) or 1.0
        values = np.asarray(m.values, dtype=np.float64).ravel()       # row by row
        shown = np.isfinite(values)
        if m.masked is not None:
            shown &= ~np.asarray(m.masked, dtype=bool).ravel()
        colours = values
        if data.extra.get("row_scaled"):          # the text's colour follows the cell's colour
            colours = row_scaled(m.display()).astype(np.float64).ravel()
        # the cell colours of all shown cells at once (ColorMap.map per value is ~10 µs)
        rgb = cmap.map((colours[shown] - lo) / span, mode="byte")
        dark = iter((0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2] < 140).tolist())
        cells = []
        for v, ok in zip(values.tolist(), shown.tolist()):
            if not ok:                                # masked or not finite
                cells.append((format_value(v) if math.isinf(v) else "0", _MASKED_TEXT))
                continue
            text = (f"{v:.0f}" if data.kind in ("binary", "ids") else (f"{v:.1e}" if v else "0")
                    if data.kind == "diff" else f"{v:.4f}")
            cells.append((text, _LIGHT_TEXT if next(dark) else _DARK_TEXT))
        self.cells.set_cells(cells)

    def fit_text(self) -> None:
        """Fit column labels and cell texts to the cells' size on screen."""
        if not self.shape[1]:
            return
        if self._shown is not None and not self._setting:
            data, k = self._shown
            if self._stride(*data.maps[k].values.shape) != self.stride:   # resized: resample
                self._setting = True
                try:
                    self._set_image(data, k)
                finally:
                    self._setting = False
        px_w, px_h = self.plot.vb.viewPixelSize()
        cell_w = 1.0 / px_w if px_w > 0 else 0.0
        cell_h = 1.0 / px_h if px_h > 0 else 0.0
        rows, cols = self.labels
        if (px_w, px_h, self.labels, self._widest) != self._fitted:   # same cells, same ticks
            fm = QtGui.QFontMetrics(self.plot.getAxis("top").style.get("tickFont") or QtGui.QFont())
            if cols:
                if self._widest is None:
                    self._widest = max(fm.horizontalAdvance(str(t)) for t in cols)
                rotated = self.plot.getAxis("top").rotated
                self._set_ticks("top", [_fitted_ticks(cols, cell_w, fm, None if rotated else self._widest)])
            if rows:
                self._set_ticks("left", [_fitted_ticks(rows, cell_h, fm, None)])
            self._fitted = (px_w, px_h, self.labels, self._widest)
        if not self._ncells:
            return
        size = int(min(14, (cell_w - 3) / self._text_factor, cell_h / 1.5))
        visible = size >= MIN_TEXT_PX - 1
        if visible:
            self._fill_texts()
        if (size, visible) == self._text_size:
            return
        self._text_size = (size, visible)
        self.cells.setVisible(visible)
        self.cells.set_pixel_size(max(size, 6))

    def _set_ticks(self, axis: str, ticks: list) -> None:
        if ticks != self._ticks.get(axis):
            self._ticks[axis] = ticks
            self.plot.getAxis(axis).setTicks(ticks)

    def cell_at(self, scene_pos) -> tuple[int, int] | None:
        vb = self.plot.vb
        if not vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = vb.mapSceneToView(scene_pos)
        row, col = int(math.floor(p.y())), int(math.floor(p.x()))
        if 0 <= row < self.shape[0] and 0 <= col < self.shape[1]:
            return row, col
        return None


class MatrixPanel(pg.GraphicsLayoutWidget):
    """One matrix of a step (all its heads), with one colour bar and hover tooltips."""

    hovered = QtCore.Signal(str)
    hovered_cell = QtCore.Signal(int, int, int)      # map index, row, column (-1s: none)
    cell_clicked = QtCore.Signal(int, int, int)     # map index, row, column
    thumbnail_clicked = QtCore.Signal(int, int, int)  # a head among many: open it large
    map_opened = QtCore.Signal(int)                 # double-click: the map on its own, zoomable

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent, show=False)
        self.setBackground("w")
        self.data: MatrixData | None = None
        self.maps: list[_Map] = []
        self.bar: pg.ColorBarItem | None = None
        self._layout_key = None
        self._grid_cols = None
        self._drawing = None                # (grid columns, title size) ``data`` was drawn with
        self._kind = None
        self._title = pg.LabelItem(justify="center", color=(20, 20, 20))
        self._frames: list[tuple] = []      # (plot, rect item, Frame) drawn by mark()
        self.setMinimumSize(160, 140)
        self._hovered = None                # (map, row, column) under the mouse
        self.open_button = QtWidgets.QToolButton(self, objectName="openMap", text="⤢")
        self.open_button.setToolTip("Open this map on its own, full-window, with zoom (or double-click a map)")
        self.open_button.setAutoRaise(True)
        self.open_button.clicked.connect(lambda: self.map_opened.emit(self._focused_map))
        self._focused_map = 0
        self.set_focused(False)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.scene().sigMouseClicked.connect(self._on_click)

    @property
    def layout_size(self) -> int | None:
        """How many maps the panel's grid holds (None before the first matrix)."""
        return self._layout_key

    def release_images(self) -> None:
        """Drop the image data of a hidden panel (kept for reuse) to free memory."""
        for m in self.maps:
            m.image.clear()
            m._shown = None
            m._image_placed = None
        self._drawing = None

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        b = getattr(self, "open_button", None)      # pyqtgraph resizes during __init__
        if b is None:
            return
        b.move(self.width() - b.sizeHint().width() - 4, 4)
        b.raise_()

    def set_focused(self, focused: bool, map_index: int | None = None, frame: bool = True) -> None:
        """Mark the matrix under focus (what File → Export matrix writes): a blue frame around
        the panel and, in a grid of heads, the chosen head's title in blue."""
        self._focused_map = map_index if focused and map_index is not None else 0
        # setStyleSheet re-polishes and setTitle re-lays out the plots: only when they change
        colour = "#2f6fd0" if focused and frame else "transparent"
        style = f"border: {PANEL_FRAME}px solid {colour};"
        if style != getattr(self, "_style", None):
            self._style = style
            self.setStyleSheet(style)
        if self.data is None:
            return
        for k, m in enumerate(self.maps):
            title = self.data.maps[k].title if k < len(self.data.maps) else ""
            if not title:
                continue
            chosen = focused and k == map_index and len(self.maps) > 1
            colour = self.data.maps[k].title_colour or "#333"
            if getattr(m, "_title_key", None) == (title, chosen, colour):
                continue
            m._title_key = (title, chosen, colour)
            m.plot.setTitle(f"▶ {title}" if chosen else title, size=pt(9),
                            color="#2f6fd0" if chosen else colour, bold=chosen)

    def set_matrix(self, data: MatrixData, grid_cols: int | None = None) -> None:
        """Draw ``data``; ``grid_cols``: at most this many maps side by side."""
        drawing = (grid_cols, pt(10))
        if self._drawing == drawing and self.data is not None and same_drawing(self.data, data):
            # the same numbers again (the full trace after the visible stage's, which holds the
            # very same arrays): nothing to redraw
            self.data = data
            return
        self._drawing = None
        n = len(data.maps)
        cmap = colormap(data.kind)
        if n != self._layout_key or grid_cols != self._grid_cols:
            self._rebuild(n, data.kind, grid_cols)
            self._layout_key = n
            self._grid_cols = grid_cols
        elif data.kind != self._kind:
            self.bar.setColorMap(cmap)          # same grid, other colours: no rebuild
        self._kind = data.kind
        self.data = data
        title = panel_title(data)
        if title != getattr(self, "_title_text", None):
            self._title_text = title
            self._title.setText(title, size=pt(10), bold=True)
        for k, m in enumerate(self.maps):
            m.set_data(data, k, cmap)
        size = panel_min_size(data, grid_cols)
        if size != getattr(self, "base_min", None):      # (the step view may grow it: see StepView)
            self.base_min = size
            self.setMinimumSize(*size)
        caption = bar_caption(data)
        if caption != getattr(self, "_caption", None):
            self._caption = caption
            self.bar.getAxis("right").setLabel(caption or None, color="#555")
        self.bar.setVisible(data.kind != "ids")     # ids are names, not a scale
        if tuple(self.bar.levels()) != tuple(data.levels):
            # the images got these levels in setImage; the bar's axis re-renders on every setLevels
            self.bar.setLevels(data.levels)
        self._drawing = drawing

    def _rebuild(self, n: int, kind: str, max_cols: int | None = None) -> None:
        self.mark([])                   # frames belong to the old grid's plots
        self.ci.clear()
        self.maps = []
        ncols, nrows = grid_shape(n, max_cols)
        self.ci.addItem(self._title, row=0, col=0, colspan=ncols + 1)
        for k in range(n):
            self.maps.append(_Map(self.ci, 1 + k // ncols, k % ncols))
        self.bar = pg.ColorBarItem(values=(0, 1), colorMap=colormap(kind), interactive=False,
                                   width=14, rounding=1e-6)
        self.bar.setImageItem([m.image for m in self.maps])
        self.bar.getAxis("right").setTextPen(pg.mkPen(20, 20, 20))
        # with a caption pyqtgraph would rescale the ticks ("shared scale (x0.001)", 300 for 0.3)
        self.bar.getAxis("right").enableAutoSIPrefix(False)
        self._caption = None
        self.ci.addItem(self.bar, row=1, col=ncols, rowspan=nrows)

    # ---- frames around cells (the inspector's, through the view model's marks) -----------------
    def mark(self, frames) -> None:
        """Frame cells: ``frames`` are :class:`gui.view_model.Frame` (map, x, y, w, h, role);
        they replace the ones drawn before. Source cells orange, the clicked cell blue."""
        for plot, item, _frame in self._frames:
            try:
                plot.removeItem(item)
            except RuntimeError:        # the plot was rebuilt with the grid
                pass
        self._frames = []
        for f in frames:
            if f.map_index >= len(self.maps):
                continue
            colour, width = MARK_PENS.get(f.role, MARK_PENS["source"])
            rect = QtWidgets.QGraphicsRectItem(f.x + 0.04, f.y + 0.04, f.w - 0.08, f.h - 0.08)
            pen = QtGui.QPen(colour, width)
            pen.setCosmetic(True)
            rect.setPen(pen)
            rect.setBrush(QtGui.QBrush(QtCore.Qt.BrushStyle.NoBrush))
            rect.setZValue(30)
            plot = self.maps[f.map_index].plot
            plot.addItem(rect)
            self._frames.append((plot, rect, f))

    def marked(self) -> list:
        """The frames drawn now (``Frame`` objects, in the order given)."""
        return [f for _plot, _item, f in self._frames]

    # ---- hover and click -------------------------------------------------------------
    def cell_at(self, scene_pos) -> tuple[int, int, int] | None:
        for k, m in enumerate(self.maps):
            cell = m.cell_at(scene_pos)
            if cell is not None:
                return (k,) + cell
        return None

    def describe(self, k: int, row: int, col: int) -> str:
        return self.data.describe(k, row, col) if self.data else ""

    def _on_move(self, scene_pos) -> None:
        hit = self.cell_at(scene_pos)
        if hit is None or self.data is None:
            QtWidgets.QToolTip.hideText()
            if self._hovered is not None:
                self._hovered = None
                self.hovered_cell.emit(-1, -1, -1)
            return
        text = self.describe(*hit)
        QtWidgets.QToolTip.showText(QtGui.QCursor.pos(), text, self)
        self.hovered.emit(text)
        if hit != self._hovered:
            self._hovered = hit
            self.hovered_cell.emit(*hit)

    def _on_click(self, event) -> None:
        hit = self.cell_at(event.scenePos())
        if hit is None:
            return
        if event.double():
            self.map_opened.emit(hit[0])
        elif self.maps[hit[0]].thumbnail:
            self.thumbnail_clicked.emit(*hit)
        else:
            self.cell_clicked.emit(*hit)
