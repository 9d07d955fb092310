"""The code beside the math: the highlighted line, and a copied snippet that prints the shown matrix."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from tests.gui.fixtures import click_cell, go_to, open_editor, shown, wait_trace


def parse_printed(text: str) -> np.ndarray:
    body = text[text.index("tensor(") + len("tensor("):]
    body = body[:body.rindex("]") + 1]
    return np.array([float(n) for n in re.findall(r"-?inf|-?\d+\.\d*(?:e[-+]?\d+)?|-?\d+", body)])


def run_copied(window, qtbot) -> np.ndarray:
    QtGui.QGuiApplication.clipboard().clear()
    qtbot.mouseClick(window.code_panel.copy_button, QtCore.Qt.MouseButton.LeftButton)
    code = QtGui.QGuiApplication.clipboard().text()
    assert code.startswith("import torch")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return parse_printed(res.stdout)


def assert_printed_equals_shown(printed: np.ndarray, data) -> None:
    shown_values = np.concatenate([m.values.astype(np.float64).ravel() for m in data.maps])
    fin = np.isfinite(shown_values)
    assert printed.shape == shown_values.shape
    assert np.array_equal(np.isfinite(printed), fin)
    assert np.max(np.abs(printed[fin] - shown_values[fin]), initial=0) <= 1e-6


def test_copied_snippet_prints_the_shown_scores(window, qtbot):
    go_to(window, qtbot, "trainable.scores")
    panel, data = shown(window, "trainable", "attn_scores")
    assert window.code_panel.highlighted_line() == "attn_scores = queries @ keys.T  # (T, T)"   # the step's result
    click_cell(qtbot, panel, 0, 0)
    assert window.code_panel.key == ("trainable", "attn_scores")
    assert_printed_equals_shown(run_copied(window, qtbot), data)


def test_focus_picks_the_highlighted_line(window, qtbot):
    go_to(window, qtbot, "trainable.scores")
    panel, data = shown(window, "trainable", "queries")
    click_cell(qtbot, panel, 0, 0)
    assert window.code_panel.highlighted_line().startswith("queries = inputs @ W_query")
    html = window.code_panel.code.toHtml()
    assert "#fff1b8" in html
    assert_printed_equals_shown(run_copied(window, qtbot), data)


def test_snippet_of_a_multihead_matrix_and_of_edited_weights(window, qtbot):
    go_to(window, qtbot, "multihead.context_heads")
    panel, data = shown(window, "multihead", "context_heads")
    click_cell(qtbot, panel, 0, 0)
    assert_printed_equals_shown(run_copied(window, qtbot), data)
    go_to(window, qtbot, "trainable.context")
    table = open_editor(window).weights["W_value"]
    wait_trace(window, qtbot, lambda: table.item(0, 1).setText("-1.25"))
    window.step_view.refresh()
    panel, data = shown(window, "trainable", "context_vecs")
    click_cell(qtbot, panel, 0, 0)
    assert "# edited in the app" in window.code_panel.current_snippet()
    assert_printed_equals_shown(run_copied(window, qtbot), data)


def test_batch_grid_snippet_prints_every_batch_item(window, qtbot):
    go_to(window, qtbot, "causal.batch")
    panel, data = shown(window, "causal", "context_vecs")
    assert len(data.maps) == 2
    click_cell(qtbot, panel, 0, 0)
    assert_printed_equals_shown(run_copied(window, qtbot), data)


Key = QtCore.Qt.Key


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


def _fresh_code_html(window) -> str:
    cp = window.code_panel
    cp._rows = None                    # forget the lines on show: the next refresh sets the whole document
    cp.refresh()
    return cp.code.toHtml()


def _code_on_screen(window):
    QtWidgets.QApplication.processEvents()
    code = window.code_panel.code
    return (code.verticalScrollBar().value(), code.horizontalScrollBar().value(),
            code.textCursor().position(), code.viewport().grab().toImage())


def test_code_lines_after_a_seed_change_equal_a_fresh_document(window, qtbot):
    c = window.controller
    go_to(window, qtbot, "multihead.weights")
    wait_trace(window, qtbot, lambda: c.set_params(seed=4))
    cp = window.code_panel
    full = []
    setHtml = cp.code.setHtml
    cp.code.setHtml = lambda text: (full.append(text), setHtml(text))
    for seed in (5, 6, 1234567):
        full.clear()
        wait_trace(window, qtbot, lambda: c.set_params(seed=seed))
        assert not full                                 # only the seed's line was replaced
        updated = cp.code.toHtml()
        assert f"torch.manual_seed({seed})" in cp.code.toPlainText()
        assert updated == _fresh_code_html(window)
        assert "#fff1b8" in updated                     # the highlighted line keeps its colour
    # another step (other lines and highlight) still shows its own code
    go_to(window, qtbot, "multihead.context_heads")
    updated = window.code_panel.code.toHtml()
    assert updated == _fresh_code_html(window)


def test_code_view_after_a_seed_change_looks_like_a_fresh_one(window, qtbot):
    """Same pixels, scroll position and cursor as a freshly set document: also after the
    learner scrolled the code away from the highlighted line (a new trace scrolls back)."""
    c = window.controller
    window.docks["code"].show()
    go_to(window, qtbot, "multihead.weights")
    code = window.code_panel.code
    for seed, scroll in ((21, None), (22, 0), (23, "max"), (24, None)):
        if scroll is not None:
            bar = code.verticalScrollBar()
            bar.setValue(bar.maximum() if scroll == "max" else scroll)
            code.horizontalScrollBar().setValue(code.horizontalScrollBar().maximum())
        wait_trace(window, qtbot, lambda: c.set_params(seed=seed))
        updated = _code_on_screen(window)
        _fresh_code_html(window)
        fresh = _code_on_screen(window)
        assert updated[:3] == fresh[:3], seed
        assert updated[3] == fresh[3], seed


def test_long_code_lines_wrap_so_the_highlighted_line_is_read_whole(window, qtbot):
    """A long line (the fused queries' view/transpose with its shape comment) wraps at the
    panel's width: no sideways scroll bar, and the highlighted line's whole text is in view."""
    window.docks["code"].show()
    go_to(window, qtbot, "multihead.split")
    cp = window.code_panel
    window.docks["code"].raise_()
    cp.resize(320, 400)
    cp.refresh()
    QtWidgets.QApplication.processEvents()
    code = cp.code
    line = cp.highlighted_line()
    assert code.fontMetrics().horizontalAdvance(line) > code.viewport().width()     # the case: a long line
    assert code.horizontalScrollBar().maximum() == 0
    doc = code.document()
    block = next(doc.findBlockByNumber(k) for k in range(doc.blockCount())
                 if doc.findBlockByNumber(k).text() == line)
    assert block.layout().lineCount() > 1                                          # wrapped
    rect = code.cursorRect(QtGui.QTextCursor(block))
    assert 0 <= rect.top() < code.viewport().height()
    # every wrapped line of it in view, not only the first (it sat on the panel's bottom edge)
    whole = doc.documentLayout().blockBoundingRect(block).translated(0, -code.verticalScrollBar().value())
    assert 0 <= whole.top() and whole.bottom() <= code.viewport().height()
