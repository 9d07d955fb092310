"""Small things of issue 21: Esc closes the sheets and the map's own window, the focus frame
stays inside its pane, a field's error is never cut, the status bar drops a fixed error."""
from __future__ import annotations

import shiboken6
from PySide6 import QtCore, QtWidgets

from tests.gui.fixtures import GOOD, TRACE_TIMEOUT_MS, go_to, type_into_spin, wait_trace

Key = QtCore.Qt.Key


def _custom(window, qtbot, **extra) -> None:
    c = window.controller
    wait_trace(window, qtbot, lambda: c.restore("custom", {**c.shown_config(), **GOOD, "device": "cpu",
                                                           "batch": 1, "dropout": 0.0, **extra}))


def _press_escape(qtbot, widget) -> None:
    """Esc as a learner presses it: to the widget that has the keyboard focus in ``widget``."""
    widget.activateWindow()
    QtWidgets.QApplication.processEvents()
    target = widget.focusWidget() or widget
    qtbot.keyClick(target, Key.Key_Escape)
    QtWidgets.QApplication.processEvents()


def test_escape_closes_the_shortcuts_sheet(window, qtbot):
    window.actions["shortcuts"].trigger()
    sheet = window.findChild(QtWidgets.QDialog, "shortcutsSheet")
    qtbot.waitUntil(sheet.isVisible)
    sheet.findChild(QtWidgets.QTextBrowser).setFocus()
    _press_escape(qtbot, sheet)
    qtbot.waitUntil(lambda: not shiboken6.isValid(sheet) or not sheet.isVisible())


def test_escape_closes_the_maps_own_window(window, qtbot):
    go_to(window, qtbot, "trainable.weights_softmax")
    sv = window.step_view
    sv.open_map(0, 0)
    win = sv.map_windows[-1]
    qtbot.waitUntil(win.isVisible)
    win.panel.setFocus()                       # the map (a graphics view) has the focus
    _press_escape(qtbot, win)
    qtbot.waitUntil(lambda: not shiboken6.isValid(win) or not win.isVisible())


def test_the_focus_frame_stays_inside_its_pane(window, qtbot):
    """The blue frame is drawn on the focused widget's own edge, never over the edge of the
    pane beside it (the navigator touches the maps' pane)."""
    nav = window.navigator
    nav.setFocus()
    frame = window.focus_frame
    qtbot.waitUntil(lambda: frame.target is nav and frame.isVisible())
    own = QtCore.QRect(nav.mapTo(window, QtCore.QPoint(0, 0)), nav.size())
    assert own.contains(frame.geometry()), (own, frame.geometry())
    assert frame.geometry().width() >= own.width() - 2      # still around the whole of it
    box = window.params.num_heads
    if box.isVisible():
        box.setFocus()
        qtbot.waitUntil(lambda: frame.target is box)
        pane = box.parentWidget()
        assert QtCore.QRect(pane.mapTo(window, QtCore.QPoint(0, 0)), pane.size()).contains(frame.geometry())


def test_a_field_error_is_shown_whole_without_widening_the_window(window, qtbot):
    _custom(window, qtbot)
    size = window.size()
    c = window.controller
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        type_into_spin(qtbot, window.params.num_heads, "3")          # d_out 4 is not divisible by 3
    label = window.params.errors["num_heads"]
    qtbot.waitUntil(label.isVisible)
    QtWidgets.QApplication.processEvents()
    need = label.fontMetrics().horizontalAdvance(label.text())
    assert label.contentsRect().width() >= need, (label.contentsRect().width(), need, label.text())
    assert label.toolTip() and window.size() == size


def test_the_status_bar_drops_an_error_once_the_value_is_fixed(window, qtbot):
    _custom(window, qtbot)
    c = window.controller
    bar = window.statusBar()
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        c.set_params(num_heads=3)
    assert "num_heads" in bar.currentMessage()
    wait_trace(window, qtbot, lambda: c.set_params(num_heads=2))
    assert bar.currentMessage() == ""


def test_a_maps_window_closed_with_escape_does_not_break_the_next_one(window, qtbot):
    """Esc deletes the map's window; opening another map (or changing the colours) after it
    must not touch the deleted one."""
    go_to(window, qtbot, "trainable.weights_softmax")
    sv = window.step_view
    sv.open_map(0, 0)
    first = sv.map_windows[-1]
    qtbot.waitUntil(first.isVisible)
    _press_escape(qtbot, first)
    qtbot.waitUntil(lambda: not shiboken6.isValid(first))
    k = next(i for i, d in enumerate(sv.datas) if d.kind == "prob")
    sv.open_map(k, 0)
    second = sv.map_windows[-1]
    assert sv.map_windows == [second]
    sv.colour_box.setCurrentIndex(sv.colour_box.findData("fixed"))
    assert second.data.levels == (0.0, 1.0)                 # the open window follows the colour choice
    sv.colour_box.setCurrentIndex(sv.colour_box.findData("spread"))
    assert second.data.levels != (0.0, 1.0)
    second.close()


def test_the_focused_matrix_line_goes_with_its_step(window, qtbot):
    """A click names the focused matrix in the status bar (for File → Export matrix); on the next
    step that matrix is no longer on screen, so the line goes (it stayed for its 8 s)."""
    from tests.gui.fixtures import click_cell
    from tests.gui.fixtures import shown as shown_panel
    go_to(window, qtbot, "trainable.scores")
    panel, _data = shown_panel(window, "trainable", "attn_scores")
    click_cell(qtbot, panel, 1, 2)
    bar = window.statusBar()
    assert bar.currentMessage().startswith("Focused trainable.attn_scores")
    window.model.next()
    assert not bar.currentMessage().startswith("Focused trainable.attn_scores"), bar.currentMessage()
