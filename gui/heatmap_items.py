"""The graphics items a heatmap is made of: its axes (labels rotated, lines beside the cells),
the values printed in its cells, a view box that keeps its cells against the axes, and a title
centred over the cells."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets


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
