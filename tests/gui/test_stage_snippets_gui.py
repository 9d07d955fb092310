"""Copy snippet on stages 6–8: the clipboard's script, run with python, prints the matrix on
screen (the trace the window draws at the bar's pointer); core.stage_snippets builds it."""
from __future__ import annotations

from PySide6 import QtGui

from tests.gui.fixtures import TRACE_TIMEOUT_MS, click_cell, shown, step_index
from tests.gui.test_code_panel import assert_printed_equals_shown, run_copied


def go_and_wait(win, qtbot, step_id: str) -> None:
    """Go to ``step_id`` and wait for its trace (read through trace_for: stage 6's own fields may move)."""
    m = win.model
    m.go(step_index(m, step_id))
    qtbot.waitUntil(lambda: m.trace_for(m.step) is not None and bool(m.shown), timeout=TRACE_TIMEOUT_MS)
    win.step_view.refresh()


def test_copy_snippet_on_a_decode_step_prints_the_maps(qtbot, window):
    go_and_wait(window, qtbot, "decode.softmax")
    panel, data = shown(window, "decode", "attn_weights")
    click_cell(qtbot, panel, 0, 1)
    assert window.code_panel.key == ("decode", "attn_weights")
    assert window.code_panel.copy_button.isEnabled()
    code = window.code_panel.current_snippet()
    position = int(window.model.trace["decode", "position"].tensor[0])
    assert f"ptr = {position}  # the new token's position" in code
    assert "import core" not in code and "from core" not in code
    assert_printed_equals_shown(run_copied(window, qtbot), data)


def test_copy_snippet_on_a_tile_and_on_rope_pairs(qtbot, window):
    go_and_wait(window, qtbot, "tiled.acc")
    window.external_bars["tiled"].pointer.setValue(4)          # a tile mid-way through the kernel's order
    qtbot.waitUntil(lambda: int(window.model.trace["tiled_step", "tile"].tensor[0]) == 4, timeout=TRACE_TIMEOUT_MS)
    window.step_view.refresh()
    panel, data = shown(window, "tiled_step", "O_after")
    click_cell(qtbot, panel, 0, 0)
    assert window.code_panel.key == ("tiled_step", "O_after")
    assert "if step == 4:" in window.code_panel.current_snippet()
    assert_printed_equals_shown(run_copied(window, qtbot), data)

    go_and_wait(window, qtbot, "rope.qpairs")
    panel, data = shown(window, "rope", "q_pairs_rot")
    click_cell(qtbot, panel, 0, 0, map_index=2)
    assert window.code_panel.key == ("rope", "q_pairs_rot")
    assert_printed_equals_shown(run_copied(window, qtbot), data)       # every position's map, in order


def test_a_matrix_without_a_script_says_so_and_leaves_the_clipboard(qtbot, window):
    go_and_wait(window, qtbot, "tiled.grid")
    panel, _data = shown(window, "tiled_view", "grid")
    click_cell(qtbot, panel, 0, 0)
    assert window.code_panel.key == ("tiled_view", "grid")
    QtGui.QGuiApplication.clipboard().setText("kept")
    window.code_panel.copy_snippet()
    assert QtGui.QGuiApplication.clipboard().text() == "kept"
    assert window.code_panel.title.text().startswith("no snippet: tiled_view.grid is drawn by the window")
