"""The code beside the math: the highlighted line, and a copied snippet that prints the shown matrix."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
from PySide6 import QtCore, QtGui

from tests.gui.clicks import click_cell, go_to, shown, wait_trace, open_editor


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
    assert window.code_panel.highlighted_line() == "attn_scores = queries @ keys.T"   # the step's result
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
