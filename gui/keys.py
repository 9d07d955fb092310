"""Which widget gets the stepping keys (Left/Right/PageUp/PageDown/Home/End).

The window's actions step through the chapter with them wherever the focus is (:class:`StepKeys`:
a combo box or a button does not swallow them), except where the learner types or moves a cursor:
text fields, spin boxes, editable tables, and the views that asked for the keys with
``keep_navigation_keys(widget)`` (the code view, the inspector's text), which accept the
ShortcutOverride so the widget gets the key press instead.
"""
from __future__ import annotations

from PySide6 import QtCore

Key = QtCore.Qt.Key
NAVIGATION = {Key.Key_Left, Key.Key_Right, Key.Key_Up, Key.Key_Down, Key.Key_PageUp, Key.Key_PageDown,
              Key.Key_Home, Key.Key_End}


class _KeepKeys(QtCore.QObject):
    def eventFilter(self, obj, event) -> bool:
        if (event.type() == QtCore.QEvent.Type.ShortcutOverride and event.key() in NAVIGATION
                and not event.modifiers() & ~QtCore.Qt.KeyboardModifier.ShiftModifier
                & ~QtCore.Qt.KeyboardModifier.KeypadModifier):
            event.accept()
            return True
        return False


def keep_navigation_keys(*widgets) -> None:
    for w in widgets:
        w.setProperty("keepsNavigationKeys", True)      # StepKeys leaves their keys to them
        f = _KeepKeys(w)
        w.installEventFilter(f)


STEPPING = {Key.Key_Left, Key.Key_Right, Key.Key_PageUp, Key.Key_PageDown, Key.Key_Home, Key.Key_End}


def is_typing(widget) -> bool:
    """True where the learner types or edits: a text field, a spin box, an editable combo box or
    text view, an editable table (its cursor keys move between cells). There the stepping keys
    stay with the widget; everywhere else in the window they step."""
    from PySide6 import QtWidgets
    w = widget
    while w is not None:
        if isinstance(w, (QtWidgets.QLineEdit, QtWidgets.QAbstractSpinBox)) or w.property("keepsNavigationKeys"):
            return True
        if isinstance(w, QtWidgets.QComboBox) and w.isEditable():
            return True
        if isinstance(w, (QtWidgets.QTextEdit, QtWidgets.QPlainTextEdit)) and not w.isReadOnly():
            return True
        if isinstance(w, QtWidgets.QAbstractItemView) and (
                w.state() == QtWidgets.QAbstractItemView.State.EditingState
                or (isinstance(w, QtWidgets.QTableView)
                    and w.editTriggers() != QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)):
            return True
        if w.isWindow():
            return False
        w = w.parentWidget()
    return False


class StepKeys(QtCore.QObject):
    """Application-wide: a stepping key pressed anywhere in ``window`` (a combo box, a button, the
    inspector's text, …) goes to the window's step shortcuts unless the focus is where one types.

    Widgets claim arrow keys through a ShortcutOverride (a combo box, a text browser, the
    ``keep_navigation_keys`` filter); swallowing that override before them lets the shortcut run.
    """

    def __init__(self, window):
        super().__init__(window)
        self.window = window

    def eventFilter(self, obj, event) -> bool:
        if event.type() != QtCore.QEvent.Type.ShortcutOverride or event.key() not in STEPPING:
            return False
        if event.modifiers() & ~QtCore.Qt.KeyboardModifier.KeypadModifier:
            return False
        from PySide6 import QtWidgets
        if not isinstance(obj, QtWidgets.QWidget) or obj.window() is not self.window or is_typing(obj):
            return False
        event.ignore()                 # not claimed: the window's shortcut for the key runs
        return True


def install_step_keys(window) -> StepKeys:
    """Install :class:`StepKeys` for ``window`` on the application (removed with the window)."""
    from PySide6 import QtWidgets
    f = StepKeys(window)
    QtWidgets.QApplication.instance().installEventFilter(f)
    return f
