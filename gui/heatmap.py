"""Labelled matrix heatmaps (pyqtgraph): one :class:`MatrixPanel` per matrix of a step.

A panel draws one :class:`~gui.matrices.MatrixData`: a grid of maps (one per head, or per
batch item) sharing one colour bar. Each map is a row-major ``ImageItem`` with the y axis
inverted (row 0 on top), token/dimension labels on the left and top axes, masked cells drawn
as NaN (transparent) over a hatched grey background, values printed in the cells of small
matrices, and a hover tooltip with the cell's labels, exact value and meaning.

Large matrices are drawn downsampled (every k-th row and column, k chosen so the image has
at most ``MAX_DISPLAY`` pixels a side) while hover still reads the exact values. Updates of a
panel with the same layout reuse the items and call ``setImage(autoLevels=False, levels=…)``.

This module is the panel and its maps; beside it: :mod:`gui.heatmap_sizing` (limits, labels that
fit, a panel's least size, the colour bar's caption), :mod:`gui.heatmap_colour` (colour maps, ARGB
words made ahead, the image item) and :mod:`gui.heatmap_items` (axes, cell values, view box,
title). Their names are importable from here too.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gui.heatmap_colour import (_LAST_STRIDE, HATCH, _Image, argb_image,  # noqa: F401
                                 colormap, colour_table, prerender, rendered_key, row_scaled)
from gui.heatmap_items import (_DARK_TEXT, _LIGHT_TEXT, _MASKED_TEXT, MARK_PENS, _AnchoredViewBox,  # noqa: F401
                                _Axis, _CellTexts, _Title)
from gui.heatmap_sizing import (BAR_WIDTH, MAX_DISPLAY, MAX_TEXT_CELLS, MAX_TICKS, MIN_DISPLAY,  # noqa: F401
                                MIN_TEXT_PX, PANEL_FRAME, THUMBNAIL_MAPS, _fitted_ticks, _tick_list, _widest,
                                bar_caption, fit_grid_cols, grid_shape, is_thumbnails, label_cell, label_font,
                                min_cell, panel_base_width, panel_min_size, panel_title, prints_values,
                                rotates_columns, row_label_width, same_drawing, square_cells, text_factor,
                                title_points)
from gui.matrices import MatrixData, format_value
from gui.present import pt


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
            _LAST_STRIDE[(rows, cols, len(data.maps), k)] = self.stride
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

    def set_data(self, data: MatrixData, k: int, cmap: pg.ColorMap, compact: bool = False,
                 rowless: bool = False) -> None:
        """Draw map ``k`` of ``data``; ``compact``: labels in the smaller font (label_font);
        ``rowless``: no row labels (the map to its left in the step's row draws the same rows)."""
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
                data.row_labels, data.col_labels, square_cells(data), pt(9), compact, rowless)
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
        rotated = rotates_columns(data, compact) and not thumb
        top = self.plot.getAxis("top")
        left = self.plot.getAxis("left")
        font = label_font(compact)
        for ax in (top, left):              # thumbnails: the map and its title only (hover names cells)
            show = not thumb and not (rowless and ax is left)
            if ax.style["showValues"] != show:
                ax.setStyle(showValues=show)
                self._fitted = None
            if ax.style.get("tickFont") != font:
                ax.setStyle(tickFont=font)
                self._fitted = self._widest = None
        height = (2 if thumb else _widest(data.col_labels, compact) + 14 + (fm.height() if data.col_axis else 0)
                  if rotated else None)
        if rotated != top.rotated or height != top.fixedHeight:
            top.set_rotated(rotated, height)
            self._fitted = None
        # the row labels' room, fixed from the data: pyqtgraph widens an axis only after a paint
        # has dropped the labels that did not fit
        width = 2 if thumb or rowless else row_label_width(data, compact)
        if left.fixedWidth != width:
            left.setWidth(width)
            self._fitted = None
        # setTitle/setLabel re-layout the plot: only call them when the text changes
        thumb = is_thumbnails(data)
        texts = (m.title, data.row_axis, data.col_axis, thumb, rowless)
        if texts != self._texts:
            self.plot.setTitle(m.title or None, size=pt(9), color=m.title_colour or "#333")
            self._title_key = None            # MatrixPanel.set_focused styles it again
            self.plot.getAxis("left").setLabel(None if thumb or rowless else data.row_axis, color="#555")
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
        self.compact = self.rowless = self.barless = False     # as set_matrix drew it
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
        if self.fits_height:
            self.height_wanted.emit()

    # set by the step view: the panel stands in the step's only row, so the row may be as tall as
    # its square cells need at their width, the room below left empty (not a colour bar three
    # times the maps' height beside 12 × 12 maps at 1920 × 1080); see StepView._fit_heights
    fits_height = False
    height_wanted = QtCore.Signal()

    def height_need(self) -> int | None:
        """With ``fits_height``: the height at which its maps' square cells are as large as their
        width allows, read off the maps as laid out now (None: any height)."""
        data = self.data
        if not self.fits_height or data is None or not self.maps or not square_cells(data):
            return None
        rows, cols = data.shape
        _gc, gr = grid_shape(len(data.maps), self._grid_cols)
        # each map's room beyond what its cells take at its width (negative: the height limits them)
        slack = min(m.plot.vb.height() - m.plot.vb.width() * rows / cols for m in self.maps)
        return max(self.minimumHeight(), int(self.height() - gr * slack) + 8)

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

    def set_matrix(self, data: MatrixData, grid_cols: int | None = None, compact: bool = False,
                   rowless: bool = False, barless: bool = False) -> None:
        """Draw ``data``; ``grid_cols``: at most this many maps side by side; ``compact``: smaller
        labels and cells (a step that does not fit otherwise); ``rowless``: no row labels (the
        panel to its left in the step's row has the same rows and draws them); ``barless``: no
        colour bar (the panel to its right in the step's row has the same scale and draws it)."""
        self.compact, self.rowless, self.barless = compact, rowless, barless
        drawing = (grid_cols, pt(10), compact, rowless, barless)
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
        if (title, compact) != getattr(self, "_title_text", None):
            self._title_text = (title, compact)
            self._title.setText(title, size=pt(title_points(compact)), bold=True)
        for k, m in enumerate(self.maps):
            m.set_data(data, k, cmap, compact, rowless)
        size = panel_min_size(data, grid_cols, compact, rowless, barless)
        if size != getattr(self, "base_min", None):      # (the step view may grow it: see StepView)
            self.base_min = size
            self.setMinimumSize(*size)
        caption = bar_caption(data)
        if caption != getattr(self, "_caption", None):
            self._caption = caption
            self.bar.getAxis("right").setLabel(caption or None, color="#555")
        if barless == (self.bar in self.ci.items):      # out of the layout: its room goes to the maps
            if barless:
                self.ci.removeItem(self.bar)
            else:
                ncols, nrows = grid_shape(n, grid_cols)
                self.ci.addItem(self.bar, row=1, col=ncols, rowspan=nrows)
        self.bar.setVisible(data.kind != "ids" and not barless)     # ids are names, not a scale
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
        """The hover's text of a cell; on a map drawn downsampled, how it is drawn (the hover
        still reads the exact cell)."""
        if not self.data:
            return ""
        return self.data.describe(k, row, col) + (self.downsampling(k) and f"  ({self.downsampling(k)})")

    def downsampling(self, k: int) -> str:
        """How map ``k`` is drawn when it has more cells than pixels ("" when whole): weights every
        k-th row, each pixel the largest weight of its k columns (gui.pooling: a one-cell stripe
        never disappears), other values every k-th row and column."""
        if self.data is None or k >= len(self.maps) or self.maps[k].stride <= 1:
            return ""
        s = self.maps[k].stride
        if self.data.kind == "prob":
            return f"drawn at 1/{s}: every {s}th row, each pixel the largest weight of its {s} columns"
        return f"drawn at 1/{s}: every {s}th row and column"

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
