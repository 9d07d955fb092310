"""Present mode: larger or smaller text (Ctrl+= / Ctrl+-) and Play/Pause auto-advance.

The font size changes the application font (every label, table and menu follows, and the map
titles, which pyqtgraph sizes in points of their own: :func:`pt`); Play
steps forward every ``interval`` seconds and stops at the last step.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

MIN_POINTS, MAX_POINTS = 7.0, 32.0
_base_points: float | None = None      # the application font's size before any zoom


def pt(points: float) -> str:
    """A pyqtgraph text size ("9pt") scaled like the application font: map titles drawn with it
    grow and shrink with present mode (a literal "9pt" stayed put while everything else grew)."""
    app = QtWidgets.QApplication.instance()
    if not _base_points or app is None:
        return f"{points:g}pt"
    return f"{points * app.font().pointSizeF() / _base_points:.1f}pt"


def _rescale_graphics_texts(factor: float) -> None:
    """Scale the pyqtgraph labels already drawn (map and panel titles), which carry their own size."""
    import sys
    pg = sys.modules.get("pyqtgraph")
    if pg is None:                         # no map drawn yet
        return
    for view in QtWidgets.QApplication.instance().allWidgets():
        if not isinstance(view, pg.GraphicsView) or view.scene() is None:
            continue
        for item in view.scene().items():
            size = item.opts.get("size") if isinstance(item, pg.LabelItem) else None
            if isinstance(size, str) and size.endswith("pt"):
                item.setText(item.text, size=f"{float(size[:-2]) * factor:.1f}pt")


class Presenter(QtCore.QObject):
    playing_changed = QtCore.Signal(bool)

    def __init__(self, model, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.model = model
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(3000)
        self.timer.timeout.connect(self._tick)
        app = QtWidgets.QApplication.instance()
        self.base_points = app.font().pointSizeF() if app else 10.0
        global _base_points
        _base_points = _base_points or self.base_points
        self.interval_box = QtWidgets.QDoubleSpinBox(objectName="playInterval")
        self.interval_box.setRange(0.5, 60.0)
        self.interval_box.setSingleStep(0.5)
        self.interval_box.setSuffix(" s")
        self.interval_box.setValue(3.0)
        self.interval_box.setToolTip("Seconds between steps while playing")
        self.interval_box.valueChanged.connect(self.set_interval)

    # ---- font size ---------------------------------------------------------------------------
    def font_points(self) -> float:
        return QtWidgets.QApplication.instance().font().pointSizeF()

    def zoom(self, factor: float) -> float:
        """Scale the application font, and the widgets with a font of their own (titles) alike."""
        app = QtWidgets.QApplication.instance()
        f = QtGui.QFont(app.font())
        old = f.pointSizeF()
        size = max(MIN_POINTS, min(MAX_POINTS, round(old * factor, 1)))
        own = [w for w in app.allWidgets() if w.testAttribute(QtCore.Qt.WidgetAttribute.WA_SetFont)]
        f.setPointSizeF(size)
        app.setFont(f)
        actual = size / old
        for w in own:
            wf = QtGui.QFont(w.font())
            if wf.pointSizeF() > 0:
                wf.setPointSizeF(max(1.0, wf.pointSizeF() * actual))
                w.setFont(wf)
        _rescale_graphics_texts(actual)
        return size

    def larger(self) -> float:
        return self.zoom(1.15)

    def smaller(self) -> float:
        return self.zoom(1 / 1.15)

    def reset_font(self) -> float:
        return self.zoom(self.base_points / max(self.font_points(), 1e-6))

    # ---- auto-advance ------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def set_interval(self, seconds: float) -> None:
        self.timer.setInterval(int(seconds * 1000))
        if self.interval_box.value() != seconds:
            self.interval_box.setValue(seconds)

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def play(self) -> None:
        c = self.model
        if c.index >= len(c.steps) - 1:
            c.first()                       # at the end: play from the start
        self.timer.start()
        self.playing_changed.emit(True)

    def pause(self) -> None:
        self.timer.stop()
        self.playing_changed.emit(False)

    def _tick(self) -> None:
        c = self.model
        if c.index >= len(c.steps) - 1:
            self.pause()
            return
        c.next()
        if c.index >= len(c.steps) - 1:
            self.pause()
