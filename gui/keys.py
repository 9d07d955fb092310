"""Navigation keys stay with the widget that has focus (tables, code), not the step shortcuts.

The window's Left/Right/PageUp/PageDown/Home/End actions step through the chapter; in a
table or a text view those keys should move the cursor. ``keep_navigation_keys(widget)``
accepts the ShortcutOverride for them, so the widget gets the key press instead.
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
        f = _KeepKeys(w)
        w.installEventFilter(f)
