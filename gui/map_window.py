"""One map of a step on its own, as large as the window, with zoom: double-click a map (or its
panel's ⤢ button) to open it; Esc closes it.

The window follows the view model: when the step is redrawn (a new trace, another batch item) it
shows the same matrix and map again, with the new numbers; hover writes the model's hover line
and a click is the same click as on the step's own map (the inspector explains it, the marks
are framed here too).
"""
from __future__ import annotations

import dataclasses

from PySide6 import QtCore, QtGui, QtWidgets

from gui.heatmap import MatrixPanel, panel_min_size
from gui.matrices import MatrixData
from gui.view_model import ViewModel, frames_for

ZOOM_STEP = 1.5
MAX_ZOOM = 16.0


class MapWindow(QtWidgets.QDialog):
    """Map ``map_index`` of the step's matrix ``matrix`` (indices into ``model.shown``)."""

    def __init__(self, model: ViewModel, matrix: int, map_index: int,
                 parent: QtWidgets.QWidget | None = None, transform=None):
        super().__init__(parent)
        self.setObjectName("mapWindow")
        self.setWindowFlag(QtCore.Qt.WindowType.Window, True)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.model = model
        self._transform = transform or (lambda d: d)
        data = model.shown[matrix]
        self.key = data.key
        self.lead = tuple(data.maps[map_index].index)
        self.data: MatrixData | None = None
        self.zoom = 1.0

        self.panel = MatrixPanel()
        self.scroll = QtWidgets.QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.panel)
        bar = QtWidgets.QHBoxLayout()
        self.zoom_out = QtWidgets.QPushButton("−", toolTip="Zoom out (−)")
        self.zoom_in = QtWidgets.QPushButton("+", toolTip="Zoom in (+)")
        self.fit = QtWidgets.QPushButton("Fit", toolTip="Fit the window (0)")
        self.zoom_label = QtWidgets.QLabel()
        for w in (self.zoom_out, self.zoom_in, self.fit, self.zoom_label):
            bar.addWidget(w)
        bar.addStretch(1)
        self.hover = QtWidgets.QLabel(objectName="mapWindowHover")
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.scroll, 1)
        lay.addWidget(self.hover)
        self.zoom_in.clicked.connect(lambda: self.set_zoom(self.zoom * ZOOM_STEP))
        self.zoom_out.clicked.connect(lambda: self.set_zoom(self.zoom / ZOOM_STEP))
        self.fit.clicked.connect(lambda: self.set_zoom(1.0))
        for keys, slot in ((("+", "="), self.zoom_in.click), (("-",), self.zoom_out.click), (("0",), self.fit.click),
                           (("Esc",), self.close)):
            for k in keys:
                QtGui.QShortcut(QtGui.QKeySequence(k), self, activated=slot)

        self.panel.hovered.connect(self._on_hover)
        self.panel.cell_clicked.connect(self._on_click)
        self.panel.thumbnail_clicked.connect(self._on_click)
        model.shown_changed.connect(self.refresh)
        model.marks_changed.connect(self._show_marks)
        if parent is not None:
            self.resize(parent.size())
        else:
            self.resize(1000, 800)
        self.refresh()
        self.set_zoom(1.0)

    def showEvent(self, event) -> None:
        """Take the keyboard when it opens: Esc closes it, + − 0 zoom."""
        super().showEvent(event)
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event) -> None:
        for signal, slot in ((self.model.shown_changed, self.refresh), (self.model.marks_changed, self._show_marks)):
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):      # closed twice (Esc, then the window's own close)
                pass
        super().closeEvent(event)

    def _find(self) -> tuple[int, int] | None:
        """(matrix, map) of the shown matrix and map this window draws, if the step has it."""
        for k, d in enumerate(self.model.shown):
            if d.key == self.key:
                for m, mp in enumerate(d.maps):
                    if tuple(mp.index) == self.lead:
                        return k, m
        return None

    def refresh(self) -> None:
        found = self._find()
        if found is None:                    # another step: keep the last numbers, say so
            if self.data is not None:
                self.setWindowTitle(f"{self.data.title} (not on this step)")
            return
        k, m = found
        d = self.model.shown[k]
        mp = d.maps[m]
        self.data = self._transform(dataclasses.replace(d, maps=[mp]))
        title = d.title + (f" · {mp.title}" if mp.title else "")
        self.setWindowTitle(title)
        self.panel.set_matrix(self.data)
        self._show_marks()

    def set_zoom(self, zoom: float) -> None:
        """1 = fit the window (cells never under their minimum); more = larger, scrolled."""
        self.zoom = max(1.0, min(MAX_ZOOM, zoom))
        self.zoom_label.setText("fit" if self.zoom == 1.0 else f"× {self.zoom:.2f}")
        if self.zoom == 1.0:
            self.scroll.setWidgetResizable(True)
            return
        self.scroll.setWidgetResizable(False)
        view = self.scroll.viewport().size()
        w, h = panel_min_size(self.data) if self.data is not None else (200, 200)
        self.panel.resize(max(w, int(view.width() * self.zoom)), max(h, int(view.height() * self.zoom)))

    def _on_hover(self, text: str) -> None:
        self.hover.setText(text)
        self.model.set_hover(text)

    def _on_click(self, _map: int, row: int, col: int) -> None:
        found = self._find()
        if found is not None:
            self.model.click(found[0], found[1], row, col)

    def _show_marks(self) -> None:
        if self.data is not None:
            self.panel.mark(frames_for(self.model.marks, self.data) if self.model.marks else [])
