"""Where the keyboard focus is: a frame drawn around the focused widget, and the focus given back
to the navigator when the focused widget disappears.

Qt's own focus cue is a dotted line that many styles hardly draw (Fusion draws none on a combo box
or a tree); a learner pressing keys must see which widget takes them. :class:`FocusFrame` is a
transparent child of the window, raised above the others, that follows the focused widget (its
moves, resizes and hiding). When the focused widget is hidden (a heads box on a step without
heads), Qt hands the focus to the next widget in the tab chain — an arbitrary one; the frame's
owner puts it back on the navigator instead, where the stepping keys are expected.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

FRAME_COLOR = QtGui.QColor("#1f6fd6")
FRAME_WIDTH = 2
_WATCHED = {QtCore.QEvent.Type.Move, QtCore.QEvent.Type.Resize, QtCore.QEvent.Type.Show,
            QtCore.QEvent.Type.Hide}


class FocusFrame(QtWidgets.QWidget):
    """A 2-px blue frame around the window's focused widget (none outside the window)."""

    def __init__(self, window: QtWidgets.QWidget, fallback: QtWidgets.QWidget | None = None):
        super().__init__(window)
        self.setObjectName("focusFrame")
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.fallback = fallback             # gets the focus when the focused widget is hidden
        self.target: QtWidgets.QWidget | None = None
        self.hide()
        QtWidgets.QApplication.instance().focusChanged.connect(self._on_focus)

    def _on_focus(self, old, new) -> None:
        if self.target is not None:
            try:
                self.target.removeEventFilter(self)
            except RuntimeError:             # already deleted
                pass
        self.target = None
        win = self.parentWidget()
        if new is None or new is self or new.window() is not win:
            self.hide()
            return
        if (old is not None and old is not new and _alive(old) and old.window() is win
                and not old.isVisible() and self.fallback is not None and self.fallback.isVisible()
                and new is not self.fallback):
            self.fallback.setFocus(QtCore.Qt.FocusReason.OtherFocusReason)   # -> _on_focus again
            return
        self.target = new
        new.installEventFilter(self)
        self.follow()

    def follow(self) -> None:
        """Put the frame on the edge of the target (the visible part of it, inside its pane)."""
        t = self.target
        win = self.parentWidget()
        if t is None or not _alive(t) or not t.isVisible():
            self.hide()
            return
        # inside the widget and what holds it (its scroll area, dock, tab page), never over the
        # edge of a neighbouring pane
        rect = QtCore.QRect(t.mapTo(win, QtCore.QPoint(0, 0)), t.size())
        holder = t.parentWidget()
        while holder is not None and holder is not win:
            rect &= QtCore.QRect(holder.mapTo(win, QtCore.QPoint(0, 0)), holder.size())
            holder = holder.parentWidget()
        rect &= win.rect()
        if rect.isEmpty():
            self.hide()
            return
        self.setGeometry(rect)
        self.show()
        self.raise_()
        self.update()

    def eventFilter(self, obj, event) -> bool:
        if obj is self.target and event.type() in _WATCHED:
            QtCore.QTimer.singleShot(0, self.follow)     # after the layout has placed it
        return False

    def paintEvent(self, _event) -> None:
        p = QtGui.QPainter(self)
        pen = QtGui.QPen(FRAME_COLOR, FRAME_WIDTH)
        pen.setJoinStyle(QtCore.Qt.PenJoinStyle.MiterJoin)
        p.setPen(pen)
        half = FRAME_WIDTH / 2
        p.drawRect(QtCore.QRectF(self.rect()).adjusted(half, half, -half, -half))
        p.end()


def _alive(widget) -> bool:
    try:
        widget.objectName()
        return True
    except RuntimeError:
        return False
