"""The centre of the window: the current step's title, formula and heatmaps.

Draws the view model's ``shown`` matrices (redrawn on ``shown_changed``), frames its ``focus``
and ``marks``, and writes the learner's choices back to it: the head selector (all heads side
by side, or one in detail), the batch-item selector, hover and click (the clicked matrix is the
"matrix under focus" that File → Export matrix writes).
"""
from __future__ import annotations

import itertools
import math
import time

from PySide6 import QtCore, QtGui, QtWidgets

from gui.heatmap import (MIN_TEXT_PX, MatrixPanel, fit_grid_cols, grid_shape, is_thumbnails, min_cell, panel_base_width,
                          panel_min_size, prints_values, rotates_columns, square_cells, text_factor)
from gui.matrices import COLOUR_MODES, SPREAD_KINDS, MatrixData, with_colours
from gui.present import pt
from gui.steps import step_numbers
from gui.texts import is_book, title_and_formula
from gui.view_model import Mark, ViewModel, frames_for

ROW_SCALE_KEY = "view/weights_per_row"     # QSettings (before the colour combo): weights coloured per row
COLOUR_KEY = "view/weight_colours"         # QSettings: the weights' colour scale, a key of COLOUR_MODES


def _settings() -> QtCore.QSettings:
    return QtCore.QSettings()


def _saved_colours() -> str:
    """The weights' colour scale last chosen: spread by default (per row where the learner had
    ticked the former "per-row colours" box)."""
    s = _settings()
    mode = s.value(COLOUR_KEY, "", type=str)
    if mode in COLOUR_MODES:
        return mode
    return "row" if s.value(ROW_SCALE_KEY, False, type=bool) else "spread"
MAX_SPARE_PANELS = 12    # hidden panels kept for reuse (their images released)
HOVER_HINT = "Hover a cell to see what it is; click a matrix to pick it for File → Export matrix."


def _grid_shape(d: MatrixData) -> tuple[int, int]:
    """(rows, columns) of the grid of maps a panel draws (see heatmap.MatrixPanel)."""
    n = len(d.maps)
    cols = n if n <= 4 else math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _width_weight(d: MatrixData) -> int:
    """Horizontal stretch of a panel: wider matrices (and more heads) get more room."""
    return _grid_shape(d)[1] * (min(d.shape[1], 24) + 3)


def _cell_font(d: MatrixData, width: float, height: float, cols_of_maps: int | None = None,
               compact: bool = False, rowless: bool = False, barless: bool = False) -> float:
    """Roughly the font size (px) a panel of this size can print its cell values in (as
    MatrixPanel sizes them: the cell less 3 px over the value's text factor). What is not cells
    (labels, axis titles, map titles, colour bar) is what heatmap.panel_min_size counts."""
    gc, gr = grid_shape(len(d.maps), cols_of_maps)
    rows, cols = d.shape
    min_w, min_h = panel_min_size(d, cols_of_maps, compact, rowless, barless)
    cw, ch = min_cell(d, compact)
    cell_w = (width - (min_w - gc * cols * cw)) / max(gc * cols, 1)
    cell_h = (height - (min_h - gr * rows * ch)) / max(gr * rows, 1)
    if rows <= 2:                      # short panels do not use the height
        cell_h = min(cell_h, 60)
    if square_cells(d):                # square cells: the smaller side is the cell
        cell_w = cell_h = min(cell_w, cell_h)
    return min((cell_w - 3) / text_factor(d), cell_h / 1.5)


def shares_rows(datas: list[MatrixData], compact: bool = False) -> bool:
    """Whether the step's matrices, in one row, can share one set of row labels (the first
    panel's): the same rows and labels, drawn alike (shape, column labels' height, map titles,
    grid of maps), so each row of cells lies level with its label in the first panel."""
    if len(datas) < 2:
        return False
    first = datas[0]

    def look(d: MatrixData) -> tuple:
        return (d.shape, d.row_labels, d.row_axis, bool(d.col_axis), len(d.maps), square_cells(d),
                rotates_columns(d, compact), any(m.title for m in d.maps),
                d.shape[0] > 2)          # a one- or two-row map is kept short (StepView's maximum height)
    return (not is_thumbnails(first) and len(first.maps) == 1
            and all(look(d) == look(first) for d in datas[1:]))


def same_scale(a: MatrixData, b: MatrixData) -> bool:
    """Whether two matrices are coloured on one shared scale (gui.matrices.share_levels): side by
    side, one colour bar serves both."""
    return (bool(a.extra.get("shared_scale")) and bool(b.extra.get("shared_scale")) and a.kind == b.kind
            and tuple(a.levels) == tuple(b.levels) and a.kind != "ids"
            and bool(a.extra.get("row_scaled")) == bool(b.extra.get("row_scaled")))


def bar_shared(datas: list[MatrixData], per_row: int) -> list[bool]:
    """Per panel, whether it leaves its colour bar to the next panel of its row (same scale)."""
    n = len(datas)
    return [(k + 1) % per_row != 0 and k + 1 < n and same_scale(datas[k], datas[k + 1]) for k in range(n)]


def _stackable(d: MatrixData) -> bool:
    """A panel of 2–4 heads (not thumbnails), which may stack its heads (one column of maps)."""
    return 2 <= len(d.maps) < 5 and not is_thumbnails(d)


def _cols(d: MatrixData, width: float, compact: bool, stacked: bool) -> int:
    """Columns of the grid of maps a panel draws: as many as fit ``width``, or one (its heads
    stacked: the step's panels then stand side by side, head k of each level with the others')."""
    return 1 if stacked and _stackable(d) else fit_grid_cols(d, width, compact)


def _row_widths(mins: list[int], stretch: list[float], width: float) -> list[float]:
    """How a row of ``width`` px is shared by panels of these minimum widths and stretch
    factors (as a grid layout does: minimums first, the rest by stretch)."""
    fixed: set[int] = set()
    while True:
        free = width - sum(mins[k] for k in fixed)
        total = sum(stretch[k] for k in range(len(mins)) if k not in fixed) or 1
        widths = [mins[k] if k in fixed else free * stretch[k] / total for k in range(len(mins))]
        short = {k for k in range(len(mins)) if k not in fixed and widths[k] < mins[k]}
        if not short:
            return widths
        fixed |= short


def hover_marks(model: ViewModel, k: int, m: int, row: int, col: int) -> tuple[Mark, ...]:
    """Marks (roles "hover"/"hovered") for the sources of cell (row, col) of map ``m`` of the
    shown matrix ``k``: the query row and key row of a score, the weights row and value column
    of a context vector… Empty when the cell has no sources on record or cannot be explained."""
    from core.provenance import explain_cell
    from gui.inspector import full_index
    trace = model.trace
    if trace is None or k >= len(model.shown):
        return ()
    data = model.shown[k]
    if data.key not in trace or data.extra.get("max_abs_diff") is not None:
        return ()
    try:
        index = full_index(data, m, row, col, trace)
        e = explain_cell(trace, data.key[0], data.key[1], index)
    except Exception:          # hover must never fail: no frames then
        return ()
    opt = (lambda seq: None if seq is None else tuple(int(v) for v in seq))
    marks = [Mark(s.stage, s.name, tuple(s.lead), opt(s.rows), opt(s.cols), "hover") for s in e.sources]
    lead = tuple(data.maps[m].index)
    marks.append(Mark(data.key[0], data.key[1], lead, (row + data.row_offset,), (col,), "hovered"))
    return tuple(marks)


class StepView(QtWidgets.QWidget):
    def __init__(self, model: ViewModel, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.panels: list[MatrixPanel] = []
        self.hover_marks: tuple[Mark, ...] = ()   # what the hovered cell is made of (framed green)
        self._spare: list[MatrixPanel] = []
        self._drawn: list[MatrixData] = []    # what the panels were last given (for relayouts)
        self._per_row = 1
        self._compact = False                 # the panels' labels smaller (heatmap.label_font)
        self._rowless = False                 # one row sharing the first panel's row labels
        self._bars: list[bool] = []           # per panel: its colour bar left to the next (same scale)
        self._stacked = False                 # panels of 2–4 heads draw them in one column
        self._relayouts: list[float] = []     # when resizes last changed the panel arrangement

        self.title = QtWidgets.QLabel(objectName="stepTitle")
        self.title.setWordWrap(True)
        f = self.title.font()
        f.setPointSizeF(f.pointSizeF() * 1.35)
        f.setBold(True)
        self.title.setFont(f)
        self.formula = QtWidgets.QLabel(objectName="stepFormula")
        self.formula.setWordWrap(True)
        self.formula.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        self.head_box = QtWidgets.QComboBox(objectName="headSelector")
        self.head_box.setToolTip("Show all heads side by side, or one head in detail")
        self.head_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.head_box.currentIndexChanged.connect(self._on_head)
        self.head_label = QtWidgets.QLabel("heads:")
        self.batch_box = QtWidgets.QSpinBox(objectName="batchSelector")
        self.batch_box.setToolTip("Which sequence of the batch to show")
        self.batch_box.valueChanged.connect(self.model.set_batch_index)
        self.batch_label = QtWidgets.QLabel("batch item:")
        self.colour_label = QtWidgets.QLabel("colours:")
        self.colour_box = QtWidgets.QComboBox(objectName="colourScale")
        for mode, text in COLOUR_MODES.items():
            self.colour_box.addItem(text, mode)
        self.colour_box.setToolTip(
            "How the attention weights are coloured. Spread: from the map's smallest to its largest "
            "weight (maps that are compared share one range), so 0.06…0.23 is not one colour. Per row: "
            "each row ÷ its largest weight (long causal maps show their structure). Shared 0–1: the "
            "fixed scale every weights map shares. The cells always print the exact weights.")
        self.colour_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.colour_box.setCurrentIndex(max(self.colour_box.findData(_saved_colours()), 0))
        self.colour_box.currentIndexChanged.connect(self._on_colours)
        # one row under the title: the formula, then the selectors (the maps get the height)
        opts = QtWidgets.QHBoxLayout()
        opts.addWidget(self.formula, 1)
        for w in (self.head_label, self.head_box, self.batch_label, self.batch_box, self.colour_label, self.colour_box):
            opts.addWidget(w)

        self.grid_host = QtWidgets.QWidget()
        self.grid = QtWidgets.QGridLayout(self.grid_host)
        # under a step's one row of panels no taller than their cells (MatrixPanel.fits_height): the room left
        self._below = QtWidgets.QSpacerItem(0, 0, QtWidgets.QSizePolicy.Policy.Minimum,
                                            QtWidgets.QSizePolicy.Policy.Expanding)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(6)
        # The maps never shrink below what their labels and values need (heatmap.min_cell):
        # when the step does not fit, it scrolls.
        self.scroll = QtWidgets.QScrollArea(objectName="stepMaps")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.grid_host)

        self.hover = QtWidgets.QLabel(HOVER_HINT, objectName="hoverInfo")
        self.hover.setWordWrap(True)
        self.hover.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hover.setMinimumHeight(self.hover.fontMetrics().lineSpacing() * 2)   # the status bar has its first line too

        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addLayout(opts)
        lay.addWidget(self.scroll, 1)
        lay.addWidget(self.hover)

        model.shown_changed.connect(self.refresh)
        model.step_changed.connect(self._on_step)
        model.focus_changed.connect(self._show_focus)
        model.marks_changed.connect(self._show_marks)
        model.hover_changed.connect(lambda text: self.hover.setText(text or HOVER_HINT))   # "": cleared
        self.refresh()

    @property
    def datas(self) -> tuple[MatrixData, ...]:
        """The matrices drawn (the model's ``shown``)."""
        return self.model.shown

    # ---- drawing ---------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw the model's current step: title, formula, selectors, panels, focus, marks."""
        m = self.model
        step = m.step
        trace = m.trace
        title, formula = title_and_formula(step, trace, is_book(m)) if trace else (step.title, "")
        self.title.setText(f"{step_numbers()[m.index]}  {title}")
        datas = [self._scaled(d) for d in m.shown]
        if trace is None:                 # this step's trace is still being computed (or the model loading)
            self.formula.setText(m.pretrained_status if step.stage == "pretrained" else
                                 m.external_status(step.stage) or "Computing…")
        elif m.draw_error is not None:
            self.formula.setText(f"cannot draw this step: {m.draw_error}")
        else:
            self._update_selectors()
            self.formula.setText(formula)
        choice = any(d.kind in SPREAD_KINDS for d in m.shown)
        self.colour_box.setVisible(choice)
        self.colour_label.setVisible(choice)
        self._drawn = datas
        self._ensure_panels(datas)
        self._draw_panels()
        self._show_focus()
        self._show_marks()

    def _update_selectors(self) -> None:
        m = self.model
        nheads = m.num_heads
        with QtCore.QSignalBlocker(self.head_box):
            if self.head_box.count() != nheads + 1:
                self.head_box.clear()
                self.head_box.addItem("all heads")
                for h in range(nheads):
                    self.head_box.addItem(f"head {h}")
            self.head_box.setCurrentIndex(0 if m.head is None else m.head + 1)
        self.head_box.setVisible(nheads > 1)
        self.head_label.setVisible(nheads > 1)
        with QtCore.QSignalBlocker(self.batch_box):
            self.batch_box.setRange(0, max(m.batch_size - 1, 0))
            self.batch_box.setValue(m.batch_index)
        self.batch_box.setVisible(m.batch_selectable)
        self.batch_label.setVisible(m.batch_selectable)

    def _ensure_panels(self, datas: list[MatrixData]) -> None:
        """One MatrixPanel per matrix, laid out in rows with widths by matrix size."""
        n = len(datas)
        for p in self.panels:
            self.grid.removeWidget(p)
        # Reuse panels (hidden ones too) whose grid already has the right number of maps:
        # building a pyqtgraph plot costs ~10 ms, a 12-head step has up to 36 of them.
        pool = self.panels + self._spare
        chosen = []
        for d in datas:
            p = next((q for q in pool if q.layout_size == len(d.maps)), None)
            if p is None:
                p = next((q for q in pool if q.layout_size is None), None) or self._new_panel()
            if p in pool:
                pool.remove(p)
            chosen.append(p)
        for p in pool:
            if p.isVisible():
                p.hide()
                p.release_images()
        while len(pool) > MAX_SPARE_PANELS:
            pool.pop(0).deleteLater()
        self.panels, self._spare = chosen, pool
        per_row, self._compact, self._rowless, barless, self._stacked = self._choose_layout(datas)
        self._bars = bar_shared(datas, per_row) if barless else [False] * n
        self._per_row = per_row
        for c in range(self.grid.columnCount()):
            self.grid.setColumnStretch(c, 0)
        for r in range(self.grid.rowCount()):
            self.grid.setRowStretch(r, 0)
        self.grid.removeItem(self._below)
        for r in range(math.ceil(n / per_row)):
            heights = [datas[k].shape[0] for k in range(r * per_row, min(n, (r + 1) * per_row))]
            self.grid.setRowStretch(r, 1 if max(heights) <= 2 else 3)
        if n <= per_row:                      # one row: what its panels leave goes below them
            self.grid.addItem(self._below, 1, 0)
            self.grid.setRowStretch(1, 1)
        for k, (p, d) in enumerate(zip(self.panels, datas)):
            self.grid.addWidget(p, k // per_row, k % per_row)
            p.show()
            # a row slice (one query) stays short instead of stretching one row tall
            p.setMaximumHeight(max(_grid_shape(d)[0] * (d.shape[0] * 70 + 50) + 70, panel_min_size(d)[1])
                               if d.shape[0] <= 2 else 16777215)
            p.fits_height = n <= per_row and d.shape[0] > 2       # one row of panels: no taller than its cells
        if self._rowless:
            # one row, the first panel the only one with row labels: each panel's width its least
            # plus an equal share of the rest, so every panel's cells get the same room (their rows level)
            W = self._room()[0]
            base = [panel_base_width(d, _cols(d, W, self._compact, self._stacked), self._compact, k > 0, self._bars[k])
                    for k, d in enumerate(datas)]
            # the grid shares out the viewport's width (no scroll bar: the row fits), as the stretches
            room = max(self.scroll.viewport().width(), W)
            extra = max(0, room - sum(base) - self.grid.spacing() * (n - 1)) / n
            for c in range(n):
                self.grid.setColumnStretch(c, max(1, round(base[c] + extra)))
            return
        for c in range(min(per_row, n)):
            self.grid.setColumnStretch(c, max(_width_weight(datas[k]) for k in range(c, n, per_row)))

    def _draw_panels(self) -> None:
        """Give each panel its matrix, its heads stacked when side by side they would not fit."""
        width, height = self._room()
        self._grid_cols = []
        compact, rowless = self._compact, self._rowless
        for k, (panel, data) in enumerate(zip(self.panels, self._drawn)):
            cols = _cols(data, width, compact, self._stacked)
            self._grid_cols.append(cols)
            panel.set_matrix(data, cols, compact, rowless and k > 0, self._bars[k] if k < len(self._bars) else False)
        QtCore.QTimer.singleShot(0, self, self._fit_heights)       # once the maps are laid out anew
        # When the step scrolls anyway, a panel of square cells is not squeezed to its minimum
        # height (a 64-token map 70 px tall in a 450 px wide panel): it gets the height its
        # width gives it, up to the visible height.
        per_row = max(self._per_row, 1)
        rows = [self.panels[r:r + per_row] for r in range(0, len(self.panels), per_row)]
        needed = sum(max(p.base_min[1] for p in row) for row in rows)
        for panel, data, cols in zip(self.panels, self._drawn, self._grid_cols):
            base_w, base_h = panel.base_min
            grow = 0.0
            if per_row == 1 and needed > height and square_cells(data):
                r, c = data.shape
                gc, gr = grid_shape(len(data.maps), cols)
                grow = max(0.0, width / per_row - base_w) * (r * gr) / max(c * gc, 1)
            target = int(min(base_h + grow, max(base_h, height * 0.95), max(base_h, panel.maximumHeight())))
            if panel.minimumHeight() != target:
                panel.setMinimumHeight(target)

    def _fit_heights(self) -> None:
        """A step's one row of panels of square cells: each panel as tall as the tallest of them
        needs at its width (their rows are level), no taller; the room below stays empty."""
        row = [p for p in self.panels if p.fits_height]
        needs = [p.height_need() for p in row]
        if not row or None in needs:
            return
        target = max(needs)
        for p in row:
            if abs(p.maximumHeight() - target) > 2:       # (a pixel's rounding: no new layout pass)
                p.setMaximumHeight(target)

    def _room(self) -> tuple[int, int]:
        """The maps' area (px), less a vertical scroll bar whether or not it shows now: the
        arrangement must not depend on the scroll bar it causes (they would take turns)."""
        vp = self.scroll.viewport().size()
        bar = self.scroll.verticalScrollBar()
        width = vp.width() - (0 if bar.isVisible() else bar.sizeHint().width())
        return max(width, 300), max(vp.height(), 200)

    def _new_panel(self) -> MatrixPanel:
        p = MatrixPanel(self.grid_host)
        # queued: not inside the panel's own resizeEvent (a panel resized there kept its old scene size)
        p.height_wanted.connect(self._fit_heights, QtCore.Qt.ConnectionType.QueuedConnection)
        # panels are reused at other positions: look the index up when the signal comes
        p.hovered.connect(lambda text, p=p: self._on_hover(self.panels.index(p), text) if p in self.panels else None)
        p.hovered_cell.connect(lambda m, r, c, p=p: self._on_hover_cell(self.panels.index(p), m, r, c)
                               if p in self.panels else None)
        p.cell_clicked.connect(lambda m, r, c, p=p: self._on_click(self.panels.index(p), m, r, c)
                               if p in self.panels else None)
        p.thumbnail_clicked.connect(lambda m, r, c, p=p: self.open_head(self.panels.index(p), m, r, c)
                                    if p in self.panels else None)
        p.map_opened.connect(lambda m, p=p: self.open_map(self.panels.index(p), m) if p in self.panels else None)
        return p

    def _choose_per_row(self, datas: list[MatrixData]) -> int:
        """Panels per row (see _choose_layout)."""
        return self._choose_layout(datas)[0]

    def _arrangements(self, datas: list[MatrixData], shared_rows: bool) -> list[tuple[int, bool, bool]]:
        """(panels per row, rowless, barless) to choose from: rowless where the step is one row of
        matrices of the same rows (shares_rows), barless where a row holds panels of one scale."""
        n = len(datas)
        out = []
        for per_row in range(1, n + 1):
            bars = (False, True) if any(bar_shared(datas, per_row)) else (False,)
            for rowless in ((False, True) if shared_rows and per_row == n else (False,)):
                out.extend((per_row, rowless, barless) for barless in bars)
        return out

    def _choose_layout(self, datas: list[MatrixData]) -> tuple[int, bool, bool, bool, bool]:
        """(panels per row, compact, rowless, barless, stacked): among the arrangements whose panels get their
        minimum size without a horizontal scroll bar, the one that needs no vertical one, then (on a
        step that compares its maps) one row, then labels in the application's font (compact: a
        smaller font and smaller cells, heatmap.label_font), then every panel with its own row labels
        (rowless: matrices of the same rows in one row share the first one's), then every panel with
        its own colour bar (barless: panels of one scale side by side share the last one's), then
        heads side by side within their panel (stacked: one column of heads a panel), then one whose small
        maps keep their printed values, then the one with the largest cells. Compared maps thus stand
        in one row, shrunk (their values hidden, then their labels smaller and shared), rather than
        stacked or scrolled."""
        n = len(datas)
        if n == 0:
            return 1, False, False, False, False
        W, H = self._room()
        compare = self.model.step.compare
        # asked again by the resize that follows and by _ensure_panels: the same matrices (kept
        # alive here, so their ids stay theirs), room and step give the same answer
        key = (tuple(datas), W, H, compare, self.grid.spacing(), pt(10), QtGui.QFont().toString())
        memo = getattr(self, "_layout_memo", None)
        if memo is not None and len(memo[0][0]) == n and all(a is b for a, b in zip(memo[0][0], datas)) \
                and memo[0][1:] == key[1:]:
            return memo[1]
        best = self._best_layout(datas, W, H, compare)
        self._layout_memo = (key, best)
        return best

    def _best_layout(self, datas: list[MatrixData], W: int, H: int, compare: bool) -> tuple[int, bool, bool, bool, bool]:
        """_choose_layout's search, for a maps' area of W × H px."""
        n = len(datas)
        spacing = self.grid.spacing()
        best, best_score = (1, False, False, False, False), None
        for compact in (False, True):
            shared = shares_rows(datas, compact)
            for (per_row, rowless, barless), stacked in itertools.product(
                    self._arrangements(datas, shared),
                    (False, True) if any(_stackable(d) for d in datas) else (False,)):
                grid_cols = [_cols(d, W, compact, stacked) for d in datas]
                bars = bar_shared(datas, per_row) if barless else [False] * n
                mins = [panel_min_size(d, grid_cols[k], compact, rowless and k > 0, bars[k])
                        for k, d in enumerate(datas)]
                if rowless:
                    # each panel as wide as its maps need plus one same extra (its cells then get
                    # the same room as the others'), the extra enough for every panel's title
                    base = [panel_base_width(d, grid_cols[k], compact, k > 0, bars[k]) for k, d in enumerate(datas)]
                    more = max(m[0] - b for m, b in zip(mins, base))
                    mins = [(b + more, m[1]) for m, b in zip(mins, base)]
                rows = [list(range(r, min(n, r + per_row))) for r in range(0, n, per_row)]
                width = max(sum(mins[k][0] for k in row) + spacing * (len(row) - 1) for row in rows)
                if per_row > 1 and width > W:
                    continue                  # (wider rows only get wider; a rowless one is narrower)
                height = sum(max(mins[k][1] for k in row) for row in rows) + spacing * (len(rows) - 1)
                # each panel's share of its row, as _ensure_panels stretches the columns
                col_min = [max(mins[k][0] for k in range(c, n, per_row)) for c in range(min(per_row, n))]
                if rowless:
                    extra = max(0, W - sum(col_min) - spacing * (n - 1)) / n
                    col_w = [m + extra for m in col_min]
                else:
                    stretch = [max(_width_weight(datas[k]) for k in range(c, n, per_row)) for c in range(min(per_row, n))]
                    col_w = _row_widths(col_min, stretch, W - spacing * (len(stretch) - 1))
                fonts = [_cell_font(d, col_w[k % per_row], H / len(rows),
                                    _cols(d, col_w[k % per_row], compact, stacked), compact, rowless and k > 0,
                                    bars[k])
                         for k, d in enumerate(datas)]
                size = min(fonts)
                values = all(f >= MIN_TEXT_PX for f, d in zip(fonts, datas) if prints_values(d))
                # heads stacked in one row of panels are compared level (head k beside head k) where
                # every panel stacks the same number of heads
                level = not stacked or len({len(d.maps) if _stackable(d) else 1 for d in datas}) == 1
                score = (height <= H and width <= W, bool(compare and len(rows) == 1 and level), not compact,
                         not rowless, not barless, not stacked, values)
                if best_score is None or score > best_score[:7] or (
                        score == best_score[:7] and size > best_score[7] + 0.25):
                    best, best_score = (per_row, compact, rowless, barless, stacked), (*score, size)
            if best_score is not None and best_score[0] and (best_score[1] or not compare or n == 1):
                break                             # it fits in the application's font: not compact
        return best

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if not self._drawn:
            return
        width = self._room()[0]
        compact = self._compact
        if [_cols(d, width, compact, self._stacked) for d in self._drawn] != getattr(self, "_grid_cols", None):
            self._draw_panels()
        if (self._choose_per_row(self._drawn) == self._per_row
                and self._choose_layout(self._drawn)[1:] == (compact, self._rowless, any(self._bars), self._stacked)):
            return
        # A new arrangement changes the panels' minimum sizes, which can resize this view
        # again; at some sizes the two arrangements would take turns for ever. Past a few
        # changes in a second, keep the one on screen.
        now = time.monotonic()
        self._relayouts = [t for t in self._relayouts if now - t < 1.0]
        if len(self._relayouts) >= 4:
            return
        self._relayouts.append(now)
        self._ensure_panels(self._drawn)
        self._draw_panels()

    @property
    def colour_mode(self) -> str:
        """The weights' colour scale chosen (a key of gui.matrices.COLOUR_MODES)."""
        return self.colour_box.currentData() or "spread"

    def _scaled(self, d: MatrixData) -> MatrixData:
        """The weights on the colour scale the learner chose (the values stay exact)."""
        return with_colours(d, self.colour_mode)

    def _on_colours(self, _index: int) -> None:
        _settings().setValue(COLOUR_KEY, self.colour_mode)
        self.refresh()
        for win in self._open_map_windows():        # a map on its own takes the same colours
            win.refresh()

    # ---- selectors, hover, focus, marks: the learner's choices go to the model ---------------
    def _on_head(self, index: int) -> None:
        self.model.set_head(None if index <= 0 else index - 1)

    def _on_hover(self, k: int, text: str) -> None:
        self.model.set_hover(text)

    def _on_click(self, k: int, m: int, row: int, col: int) -> None:
        self.model.click(*self._per_head_cell(k, m, row, col))

    def _per_head_cell(self, k: int, m: int, row: int, col: int) -> tuple[int, int, int, int]:
        """A cell of a merged (T, d_out) map as the same number in the step's per-head map
        (what the inspector explains); any other cell as it is."""
        shown = self.model.shown
        if k >= len(shown) or "merged_heads" not in shown[k].extra:
            return k, m, row, col
        hd = shown[k].extra["merged_heads"]
        head, c = divmod(col, hd)
        lead = tuple(shown[k].maps[m].index) + (head,)
        for k2, d in enumerate(shown):
            if d.key == shown[k].key and k2 != k:
                for m2, mp in enumerate(d.maps):
                    if tuple(mp.index) == lead:
                        return k2, m2, row, c
        return k, m, row, col

    def open_head(self, k: int, m: int, row: int, col: int) -> None:
        """A click on one of many heads: that head large (the model's head), its cell inspected."""
        head = self.model.shown[k].maps[m].head if k < len(self.model.shown) else None
        if head is None:
            self.model.click(k, m, row, col)
            return
        self.model.set_head(head)
        self.model.click(k, 0, row, col)

    def open_map(self, k: int, m: int) -> None:
        """One map on its own, as large as the window, with zoom (hover and click still work)."""
        from gui.map_window import MapWindow
        if k >= len(self.model.shown):
            return
        win = MapWindow(self.model, k, m, self.window(), transform=self._scaled)
        win.show()
        self.map_windows = self._open_map_windows() + [win]

    def _open_map_windows(self) -> list:
        """The maps' own windows still open (a closed one is deleted: Esc, its close button)."""
        import shiboken6
        return [w for w in getattr(self, "map_windows", []) if shiboken6.isValid(w) and w.isVisible()]

    def _show_focus(self) -> None:
        k, m = self.model.focus
        for i, p in enumerate(self.panels):
            p.set_focused(self.model.focus_picked and i == k, m, frame=len(self.panels) > 1)

    def _on_step(self, _index: int) -> None:
        self.hover_marks = ()
        self.scroll.verticalScrollBar().setValue(0)
        self.scroll.horizontalScrollBar().setValue(0)

    def _on_hover_cell(self, k: int, m: int, row: int, col: int) -> None:
        """Show the operation: frame, in the step's maps, the row and column (or the cells) the
        hovered cell is made of (core.provenance's sources of that cell)."""
        self.hover_marks = hover_marks(self.model, *self._per_head_cell(k, m, row, col)) if m >= 0 else ()
        self._show_marks()

    def _show_marks(self) -> None:
        """Frame the cells the model marks (the inspector's sources and clicked cell) and what
        the hovered cell is made of."""
        marks = tuple(self.model.marks) + tuple(self.hover_marks)
        for p, d in zip(self.panels, self._drawn):
            p.mark(frames_for(marks, d) if marks else [])
