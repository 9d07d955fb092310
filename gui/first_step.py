"""The first step's matrix drawn before torch (and pyqtgraph) have loaded.

Step 1 of the chapter only shows the inputs X: the book's six embeddings, which are numbers in
``core.inputs`` and need no computing. So that the learner sees them at once, the window puts
this small widget in place of the heatmap view until the first trace arrives: one coloured
cell per value with its number (the heatmap's look, painted with QPainter), token labels on
the rows, ``in0 in1 …`` on the columns. Torch loads meanwhile on the worker thread; the real
step view replaces this widget when the trace is in. Nothing here imports torch or pyqtgraph.
"""
from __future__ import annotations

import sys
import time

from PySide6 import QtCore, QtGui, QtWidgets

TITLE = "The inputs X: one embedding per token"      # resources/steps.json, step simplified.inputs


def preview_inputs(mode: str, params: dict | None, step_index: int):
    """The inputs to preview (core.inputs.Inputs), or None when the start-up step is not the
    book's inputs step (another step, or custom embeddings: their numbers need torch)."""
    if step_index != 0:
        return None
    if mode == "custom" and (params or {}).get("embeddings", "book") != "book":
        return None
    if mode == "custom" and (params or {}).get("d_in", 3) != 3:
        return None                      # book embeddings with another d_in: the trace reports an error
    from core.inputs import book_inputs   # numpy only
    return book_inputs()


class InputsPreview(QtWidgets.QWidget):
    """X as a table of coloured cells; ``painted_at`` is when it was first on screen (time.time())."""

    def __init__(self, inputs, parent=None):
        super().__init__(parent, objectName="inputsPreview")
        self.tokens = tuple(inputs.labels)
        self.values = tuple(tuple(float(v) for v in row) for row in inputs.values)
        self.painted_at: float | None = None
        self.torch_loaded_at_paint: bool | None = None
        self.setMinimumSize(320, 240)

    def cell_text(self, row: int, col: int) -> str:
        return f"{self.values[row][col]:.4f}"

    def _colour(self, v: float, lo: float, hi: float) -> QtGui.QColor:
        # white (low) to the heatmap's blue (high): a light scale so the numbers stay readable
        t = 0.0 if hi <= lo else (v - lo) / (hi - lo)
        return QtGui.QColor(int(255 - 190 * t), int(255 - 120 * t), 255)

    def paintEvent(self, _event) -> None:
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        fm = p.fontMetrics()
        rows, cols = len(self.values), len(self.values[0]) if self.values else 0
        title_h = fm.height() * 2
        f = p.font()
        f.setBold(True)
        p.setFont(f)
        p.drawText(QtCore.QRect(0, 0, self.width(), title_h), QtCore.Qt.AlignmentFlag.AlignCenter,
                   f"{TITLE}   (X: {rows} × {cols})")
        f.setBold(False)
        p.setFont(f)
        label_w = max((fm.horizontalAdvance(t) for t in self.tokens), default=0) + 12
        cell_w = max(fm.horizontalAdvance("-0.0000") + 16,
                     min(120, (self.width() - label_w - 20) // max(cols, 1)))
        cell_h = max(fm.height() + 8, min(48, (self.height() - title_h * 2) // max(rows, 1)))
        x0 = max(label_w, (self.width() - cols * cell_w) // 2)
        y0 = title_h + fm.height() + 6
        flat = [v for row in self.values for v in row]
        lo, hi = (min(flat), max(flat)) if flat else (0.0, 1.0)
        for c in range(cols):
            p.drawText(QtCore.QRect(x0 + c * cell_w, y0 - fm.height() - 4, cell_w, fm.height()),
                       QtCore.Qt.AlignmentFlag.AlignCenter, f"in{c}")
        for r in range(rows):
            y = y0 + r * cell_h
            p.drawText(QtCore.QRect(x0 - label_w, y, label_w - 6, cell_h),
                       QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter, self.tokens[r])
            for c in range(cols):
                rect = QtCore.QRect(x0 + c * cell_w, y, cell_w, cell_h)
                p.fillRect(rect, self._colour(self.values[r][c], lo, hi))
                p.setPen(QtGui.QColor(40, 40, 40))
                p.drawText(rect, QtCore.Qt.AlignmentFlag.AlignCenter, self.cell_text(r, c))
        p.end()
        if self.painted_at is None:
            self.painted_at = time.time()
            self.torch_loaded_at_paint = "torch" in sys.modules    # the start-up probe reports it
