"""The centre of the window: the current step's title, formula and heatmaps.

Observes the controller: redraws on ``step_changed`` and ``trace_changed``. Multi-head steps
show all heads (a grid per matrix) or, with the head selector, one head in detail; batched
traces get a batch-item selector. The panel the learner last hovered or clicked is the
"matrix under focus" that File → Export matrix writes.
"""
from __future__ import annotations

import dataclasses
import math
import time

from PySide6 import QtCore, QtWidgets

from gui.heatmap import MatrixPanel
from gui.matrices import MatrixData, resolve_panel
from gui.steps import step_numbers
from gui.texts import is_book, title_and_formula

PANELS_PER_ROW = 3
MAX_SPARE_PANELS = 12    # hidden panels kept for reuse (their images released)


def _grid_shape(d: MatrixData) -> tuple[int, int]:
    """(rows, columns) of the grid of maps a panel draws (see heatmap.MatrixPanel)."""
    n = len(d.maps)
    cols = n if n <= 4 else math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _width_weight(d: MatrixData) -> int:
    """Horizontal stretch of a panel: wider matrices (and more heads) get more room."""
    return _grid_shape(d)[1] * (min(d.shape[1], 24) + 3)


def _cell_font(d: MatrixData, width: float, height: float) -> float:
    """Roughly the font size (px) a panel of this size can print its cell values in."""
    gr, gc = _grid_shape(d)
    rows, cols = d.shape
    cell_w = (width - 50 - gc * 75) / max(gc * cols, 1)
    cell_h = (height - 50 - gr * 55) / max(gr * rows, 1)
    if rows <= 2:                      # short panels do not use the height
        cell_h = min(cell_h, 60)
    return min(cell_w / 3.9, cell_h / 1.5)


class StepView(QtWidgets.QWidget):
    focus_changed = QtCore.Signal()
    hovered = QtCore.Signal(str)
    cell_clicked = QtCore.Signal(object, int, int, int)   # MatrixData, map index, row, column

    def __init__(self, controller, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.panels: list[MatrixPanel] = []
        self._spare: list[MatrixPanel] = []
        self.datas: list[MatrixData] = []
        self.focus = (0, 0)                # (panel index, map index)
        self.head: int | None = None       # None = all heads
        self.batch_index = 0
        self._per_row = 1
        self._relayouts: list[float] = []     # when resizes last changed the panel arrangement
        self._focus_shown = False

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
        self.batch_box.valueChanged.connect(self._on_batch)
        self.batch_label = QtWidgets.QLabel("batch item:")
        opts = QtWidgets.QHBoxLayout()
        for w in (self.head_label, self.head_box, self.batch_label, self.batch_box):
            opts.addWidget(w)
        opts.addStretch(1)

        self.grid_host = QtWidgets.QWidget()
        self.grid = QtWidgets.QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(6)

        self.hover = QtWidgets.QLabel("Hover a cell to see what it is; click a matrix to pick it for File → Export matrix.", objectName="hoverInfo")
        self.hover.setWordWrap(True)
        self.hover.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hover.setMinimumHeight(self.hover.fontMetrics().lineSpacing() * 3)

        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.formula)
        lay.addLayout(opts)
        lay.addWidget(self.grid_host, 1)
        lay.addWidget(self.hover)

        controller.step_changed.connect(self._on_step)
        controller.trace_changed.connect(self.refresh)
        self.refresh()

    # ---- drawing ---------------------------------------------------------------------
    def _on_step(self, _index: int) -> None:
        self.focus = (0, 0)
        self._focus_shown = False      # the frame appears once the learner clicks a matrix
        self.refresh()

    def refresh(self) -> None:
        c = self.controller
        step = c.step
        trace = c.trace
        title, formula = title_and_formula(step, trace, is_book(c)) if trace else (step.title, "")
        self.title.setText(f"{step_numbers()[c.index]}  {title}")
        if trace is None:                 # this step's trace is still being computed
            self.formula.setText("Computing…")
            self.datas = []
            self._ensure_panels([])
            return
        try:
            datas = [d for d in (resolve_panel(p, trace, self.batch_index) for p in step.panels) if d]
        except Exception as exc:   # a step that cannot be drawn must not take the app down
            self.formula.setText(f"cannot draw this step: {exc}")
            self.datas = []
            self._ensure_panels([])
            return
        self._update_selectors(datas, trace)
        if self.head is not None:
            datas = [self._only_head(d) for d in datas]
        self.datas = datas
        self.formula.setText(formula)
        self._ensure_panels(datas)
        for panel, data in zip(self.panels, datas):
            panel.set_matrix(data)
        if self.focus[0] >= len(datas):
            self.focus = (0, 0)
        self._show_focus()

    def _only_head(self, data: MatrixData) -> MatrixData:
        heads = [m for m in data.maps if m.head == self.head]
        if not heads:
            return data
        return dataclasses.replace(data, maps=heads)

    def _update_selectors(self, datas: list[MatrixData], trace) -> None:
        nheads = max((m.head + 1 for d in datas for m in d.maps if m.head is not None), default=0)
        if self.head is not None and self.head >= nheads:
            self.head = None
        with QtCore.QSignalBlocker(self.head_box):
            if self.head_box.count() != nheads + 1:
                self.head_box.clear()
                self.head_box.addItem("all heads")
                for h in range(nheads):
                    self.head_box.addItem(f"head {h}")
            self.head_box.setCurrentIndex(0 if self.head is None else self.head + 1)
        self.head_box.setVisible(nheads > 1)
        self.head_label.setVisible(nheads > 1)
        b = trace.config.batch
        batched = b > 1 and any(d.key[0] in ("causal", "multihead") and not
                                any(m.title.startswith("batch") for m in d.maps) for d in datas)
        with QtCore.QSignalBlocker(self.batch_box):
            self.batch_box.setRange(0, max(b - 1, 0))
            self.batch_index = min(self.batch_index, b - 1)
            self.batch_box.setValue(self.batch_index)
        self.batch_box.setVisible(batched)
        self.batch_label.setVisible(batched)

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
        per_row = self._per_row = self._choose_per_row(datas)
        for c in range(self.grid.columnCount()):
            self.grid.setColumnStretch(c, 0)
        for r in range(self.grid.rowCount()):
            self.grid.setRowStretch(r, 0)
        for r in range(math.ceil(n / per_row)):
            heights = [datas[k].shape[0] for k in range(r * per_row, min(n, (r + 1) * per_row))]
            self.grid.setRowStretch(r, 1 if max(heights) <= 2 else 3)
        for k, (p, d) in enumerate(zip(self.panels, datas)):
            self.grid.addWidget(p, k // per_row, k % per_row)
            p.show()
            # a row slice (one query) stays short instead of stretching one row tall
            p.setMaximumHeight(_grid_shape(d)[0] * (d.shape[0] * 70 + 50) + 70 if d.shape[0] <= 2 else 16777215)
        for c in range(min(per_row, n)):
            self.grid.setColumnStretch(c, max(_width_weight(datas[k]) for k in range(c, n, per_row)))

    def _new_panel(self) -> MatrixPanel:
        p = MatrixPanel(self.grid_host)
        # panels are reused at other positions: look the index up when the signal comes
        p.hovered.connect(lambda text, p=p: self._on_hover(self.panels.index(p), text) if p in self.panels else None)
        p.cell_clicked.connect(lambda m, r, c, p=p: self._on_click(self.panels.index(p), m, r, c)
                               if p in self.panels else None)
        return p

    def _choose_per_row(self, datas: list[MatrixData]) -> int:
        """Panels per row that give the largest cells (so values stay printable)."""
        n = len(datas)
        if n <= 1:
            return 1
        W = max(self.grid_host.width(), 500)
        H = max(self.grid_host.height(), 350)
        best, best_size = 1, -1.0
        for per_row in range(1, n + 1):
            rows = math.ceil(n / per_row)
            size = min(_cell_font(d, W / per_row, H / rows) for d in datas)
            if size > best_size + 0.25:
                best, best_size = per_row, size
        return best

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if not self.datas or self._choose_per_row(self.datas) == self._per_row:
            return
        # A new arrangement changes the panels' minimum sizes, which can resize this view
        # again; at some sizes the two arrangements would take turns for ever. Past a few
        # changes in a second, keep the one on screen.
        now = time.monotonic()
        self._relayouts = [t for t in self._relayouts if now - t < 1.0]
        if len(self._relayouts) >= 4:
            return
        self._relayouts.append(now)
        self._ensure_panels(self.datas)

    # ---- selectors, hover, focus -------------------------------------------------------
    def _on_head(self, index: int) -> None:
        self.head = None if index <= 0 else index - 1
        self.refresh()

    def _on_batch(self, value: int) -> None:
        self.batch_index = value
        self.refresh()

    def _on_hover(self, k: int, text: str) -> None:
        self.hover.setText(text)
        self.hovered.emit(text)

    def _on_click(self, k: int, m: int, row: int, col: int) -> None:
        self._set_focus(k, m)
        if k < len(self.datas):
            self.cell_clicked.emit(self.datas[k], m, row, col)

    def _set_focus(self, k: int, m: int) -> None:
        self.focus = (k, m)
        self._focus_shown = True
        self._show_focus()
        self.focus_changed.emit()

    def _show_focus(self) -> None:
        for i, p in enumerate(self.panels):
            p.set_focused(self._focus_shown and i == self.focus[0], self.focus[1], frame=len(self.panels) > 1)

    def focused(self) -> tuple[MatrixData, int] | None:
        """The matrix under focus and which of its maps (for File → Export matrix)."""
        if not self.datas:
            return None
        k, m = self.focus
        k = min(k, len(self.datas) - 1)
        return self.datas[k], min(m, len(self.datas[k].maps) - 1)
