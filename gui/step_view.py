"""The centre of the window: the current step's title, formula and heatmaps.

Draws the view model's ``shown`` matrices (redrawn on ``shown_changed``), frames its ``focus``
and ``marks``, and writes the learner's choices back to it: the head selector (all heads side
by side, or one in detail), the batch-item selector, hover and click (the clicked matrix is the
"matrix under focus" that File → Export matrix writes).
"""
from __future__ import annotations

import math
import time

from PySide6 import QtCore, QtWidgets

from gui.heatmap import MatrixPanel
from gui.matrices import MatrixData
from gui.steps import step_numbers
from gui.texts import is_book, title_and_formula
from gui.view_model import ViewModel, frames_for

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
    def __init__(self, model: ViewModel, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.panels: list[MatrixPanel] = []
        self._spare: list[MatrixPanel] = []
        self._drawn: list[MatrixData] = []    # what the panels were last given (for relayouts)
        self._per_row = 1
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

        model.shown_changed.connect(self.refresh)
        model.focus_changed.connect(self._show_focus)
        model.marks_changed.connect(self._show_marks)
        model.hover_changed.connect(self.hover.setText)
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
        datas = list(m.shown)
        if trace is None:                 # this step's trace is still being computed (or the model loading)
            self.formula.setText(m.pretrained_status if step.stage == "pretrained" else "Computing…")
        elif m.draw_error is not None:
            self.formula.setText(f"cannot draw this step: {m.draw_error}")
        else:
            self._update_selectors()
            self.formula.setText(formula)
        self._drawn = datas
        self._ensure_panels(datas)
        for panel, data in zip(self.panels, datas):
            panel.set_matrix(data)
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
        if not self._drawn or self._choose_per_row(self._drawn) == self._per_row:
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

    # ---- selectors, hover, focus, marks: the learner's choices go to the model ---------------
    def _on_head(self, index: int) -> None:
        self.model.set_head(None if index <= 0 else index - 1)

    def _on_batch(self, value: int) -> None:
        self.model.set_batch_index(value)

    def _on_hover(self, k: int, text: str) -> None:
        self.model.set_hover(text)

    def _on_click(self, k: int, m: int, row: int, col: int) -> None:
        self.model.click(k, m, row, col)

    def _show_focus(self) -> None:
        k, m = self.model.focus
        for i, p in enumerate(self.panels):
            p.set_focused(self.model.focus_picked and i == k, m, frame=len(self.panels) > 1)

    def _show_marks(self) -> None:
        """Frame the cells the model marks (the inspector's sources and clicked cell)."""
        marks = self.model.marks
        for p, d in zip(self.panels, self._drawn):
            p.mark(frames_for(marks, d) if marks else [])
