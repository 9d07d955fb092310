"""Errors become messages; big matrices draw downsampled while hover stays exact."""
from __future__ import annotations

import sys

import numpy as np
from PySide6 import QtCore

from gui.heatmap import MAX_DISPLAY, MatrixPanel
from gui.matrices import MapData, MatrixData


def test_an_exception_in_a_slot_becomes_a_status_message(window, qtbot, monkeypatch, tmp_path):
    from gui import errors
    monkeypatch.setattr(errors, "log_path", lambda: tmp_path / "errors.log")
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)     # restored after the test
    errors.install_excepthook(window)

    def boom():
        raise RuntimeError("kaboom")

    sys.excepthook(*_exc_info(boom))
    assert "kaboom" in window.statusBar().currentMessage()
    assert "kaboom" in (tmp_path / "errors.log").read_text()
    assert window.isVisible()


def _exc_info(fn):
    try:
        fn()
    except RuntimeError:
        return sys.exc_info()


def test_big_matrix_is_downsampled_but_hover_is_exact(qtbot):
    n = 1500
    values = np.arange(n * n, dtype=np.float32).reshape(n, n) / (n * n)
    labels = tuple(f"t{i}" for i in range(n))
    data = MatrixData(key=("trainable", "attn_weights"), title="A", symbol="A", meaning="weights",
                      maps=[MapData(values, None)], row_labels=labels, col_labels=labels,
                      row_axis="query", col_axis="key", kind="prob", levels=(0.0, 1.0),
                      template="A[{r}, {c}] = {v}")
    panel = MatrixPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 600)
    panel.show()
    panel.set_matrix(data)
    shown = panel.maps[0].image.image
    assert max(shown.shape) <= MAX_DISPLAY
    assert panel.maps[0].texts == []                     # no per-cell text on big matrices
    row, col = 1234, 777
    hit = panel.cell_at(panel.maps[0].plot.vb.mapViewToScene(QtCore.QPointF(col + 0.5, row + 0.5)))
    assert hit == (0, row, col)
    assert panel.describe(*hit).startswith(f"A[t{row}, t{col}] = {values[row, col]:.4f}")
