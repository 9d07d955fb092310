"""A one-line label that never wraps or widens its row: text past its width ends in "…".

Field errors sit beside their control in the parameter panel's rows; a wrapping label grew the
panel by several lines (the maps jumped ~100 px down) and a plain one-line label would widen
the window. The whole text stays in the tooltip (set by the caller) and in ``text()``.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets


class ElidedLabel(QtWidgets.QLabel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setWordWrap(False)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed)

    def minimumSizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(self.fontMetrics().horizontalAdvance("…") * 4, self.fontMetrics().height())

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(self.fontMetrics().horizontalAdvance(self.text()) + 4, self.fontMetrics().height())

    def paintEvent(self, _event) -> None:
        p = QtGui.QPainter(self)
        p.setPen(self.palette().color(self.foregroundRole()))
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), QtCore.Qt.TextElideMode.ElideRight, rect.width())
        p.drawText(rect, int(self.alignment() | QtCore.Qt.AlignmentFlag.AlignVCenter), text)
        p.end()
