"""Helpers for the feature tests: go to a step, find a shown matrix, click one of its cells."""
from __future__ import annotations

from PySide6 import QtCore

from tests.gui.conftest import TRACE_TIMEOUT_MS


def go_to(window, qtbot, step_id: str) -> None:
    c = window.controller
    c.go(next(i for i, s in enumerate(c.steps) if s.id == step_id))
    qtbot.waitUntil(lambda: c.trace is not None and not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    window.step_view.refresh()


def shown(window, stage: str, name: str):
    """(panel, data) of the shown matrix stage.name (not a difference panel)."""
    sv = window.step_view
    for panel, data in zip(sv.panels, sv.datas):
        if data.key == (stage, name) and data.extra.get("max_abs_diff") is None:
            return panel, data
    raise AssertionError(f"{stage}.{name} not shown; shown: {[d.key for d in sv.datas]}")


def click_cell(qtbot, panel, row: int, col: int, map_index: int = 0) -> None:
    """A real mouse click in the middle of a heatmap cell (once the panel is laid out)."""
    from PySide6 import QtWidgets
    QtWidgets.QApplication.processEvents()
    vb = panel.maps[map_index].plot.vb
    scene = vb.mapViewToScene(QtCore.QPointF(col + 0.5, row + 0.5))
    pos = panel.mapFromScene(scene)
    qtbot.mouseClick(panel.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)


def wait_trace(window, qtbot, action) -> None:
    """Run ``action`` and wait for the trace it asks for."""
    c = window.controller
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        action()
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)


def open_editor(window):
    """The Edit inputs dock, shown (its tables fill when they are on screen)."""
    dock = window.docks["inputs"]
    dock.show()
    dock.raise_()
    editor = window.inputs_editor
    if editor._stale:
        editor.refresh()
    return editor


def open_lesson_and_wait(window, qtbot, path, show_box: bool = True) -> str:
    """Open a lesson (read off the UI thread) and wait until it is applied or refused: "" or the message."""
    from gui.lessons import open_lesson
    done: list[str] = []
    open_lesson(window, str(path), show_box, on_done=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=TRACE_TIMEOUT_MS)
    return done[0]
