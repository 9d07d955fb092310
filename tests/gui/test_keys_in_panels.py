"""Keys typed in the feature panels stay there: arrow keys move the table cursor, not the step."""
from __future__ import annotations

from PySide6 import QtCore

from tests.gui.clicks import go_to, open_editor

Key = QtCore.Qt.Key


def test_arrow_keys_in_the_inputs_table_do_not_step(window, qtbot):
    go_to(window, qtbot, "trainable.scores")
    c = window.controller
    editor = open_editor(window)
    table = editor.embeddings
    table.setFocus()
    table.setCurrentCell(1, 1)
    qtbot.waitUntil(table.hasFocus)
    index = c.index
    qtbot.keyClick(table, Key.Key_Right)
    qtbot.keyClick(table, Key.Key_Down)
    assert c.index == index
    assert (table.currentRow(), table.currentColumn()) == (2, 2)


def test_arrow_keys_in_the_code_view_do_not_step_but_elsewhere_do(window, qtbot):
    go_to(window, qtbot, "trainable.scores")
    c = window.controller
    code = window.code_panel.code
    code.setFocus()
    qtbot.waitUntil(code.hasFocus)
    index = c.index
    qtbot.keyClick(code, Key.Key_Right)
    qtbot.keyClick(code, Key.Key_PageDown)
    assert c.index == index
    window.navigator.setFocus()
    qtbot.waitUntil(window.navigator.hasFocus)
    qtbot.keyClick(window.navigator, Key.Key_Right)
    assert c.index == index + 1
