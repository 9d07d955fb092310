"""Large inputs (issue 5), without timings: the memory guard, cancelled exports, downsampled display."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from tests.gui.conftest import TRACE_TIMEOUT_MS


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_memory_guard_refuses_an_oversized_config_and_keeps_the_last_trace(window, qtbot, monkeypatch):
    import core.memory
    c = window.controller
    before = c.trace
    assert before is not None
    monkeypatch.setattr(core.memory, "available_bytes", lambda device="cpu": 64 * 2**20)   # 64 MiB free
    errors = []
    c.error.connect(lambda field, message: errors.append(message))
    text = " ".join(f"t{i}" for i in range(1500))            # 1500 tokens × 12 heads: gigabytes
    c.set_params(embeddings="random", text=text, d_in=96, d_out=96, num_heads=12)
    qtbot.waitUntil(lambda: bool(errors) and not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    msg = errors[-1]
    assert "needs about" in msg and "reduce the tokens (1500)" in msg and "heads (12)" in msg
    assert c.trace is before                                  # the last trace stays on screen
    assert window.step_view.datas                             # and its heatmaps
    assert msg in window.statusBar().currentMessage()


@pytest.mark.parametrize("fmt", ["csv", "npy", "npz"])
def test_cancelled_export_leaves_the_folder_as_it_was(window, qtbot, tmp_path, fmt):
    from gui.exporting import ExportJob
    target = tmp_path / "out"
    (target / "multihead").mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    (target / "multihead" / "attn_weights_h0.csv").write_text("an earlier export")
    before = _snapshot(target)
    siblings = sorted(p.name for p in tmp_path.iterdir())
    job = ExportJob(window.controller.trace, str(target), fmt)
    job.progress.connect(lambda done, total: job.cancel(), QtCore.Qt.ConnectionType.DirectConnection)
    messages = []
    job.finished_with.connect(messages.append, QtCore.Qt.ConnectionType.DirectConnection)
    job.start()
    assert job.wait(TRACE_TIMEOUT_MS)
    assert messages == ["Export cancelled; the folder was left as it was"]      # cancelled after one file
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings     # no staging folder left behind


def test_cancel_before_the_first_file_writes_nothing(window, tmp_path):
    from gui.exporting import ExportJob
    target = tmp_path / "fresh"
    job = ExportJob(window.controller.trace, str(target), "npy")
    job.cancel()
    job.start()
    assert job.wait(TRACE_TIMEOUT_MS)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_export_all_offers_numpy_formats(window, qtbot, tmp_path, monkeypatch):
    from PySide6 import QtWidgets
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "npy"))
    with qtbot.waitSignal(window.export_finished, timeout=TRACE_TIMEOUT_MS) as sig:
        window.actions["export_all_npy"].trigger()
    assert "NPY files" in sig.args[0]
    trace = window.controller.trace
    saved = np.load(tmp_path / "npy" / "multihead" / "attn_weights.npy")
    np.testing.assert_array_equal(saved, trace["multihead", "attn_weights"].numpy())
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "npz"))
    with qtbot.waitSignal(window.export_finished, timeout=TRACE_TIMEOUT_MS):
        window.actions["export_all_npz"].trigger()
    with np.load(tmp_path / "npz" / "trace.npz") as z:
        np.testing.assert_array_equal(z["causal/attn_weights"], trace["causal", "attn_weights"].numpy())
    assert "Export all as CSV…" in [a.text() for a in window.menuBar().actions()[0].menu().actions()]


def test_downsampled_display_reports_exact_values_on_hover(qtbot):
    from gui import heatmap
    from gui.heatmap import MatrixPanel
    from gui.matrices import MapData, MatrixData, format_value
    n = heatmap.MAX_DISPLAY * 2 + 37                          # drawn with a stride of 3 or more
    rng = np.random.default_rng(5)
    values = rng.standard_normal((n, n)).astype(np.float32)
    labels = tuple(f"t{i}" for i in range(n))
    data = MatrixData(key=("multihead", "attn_scores"), title="scores", symbol="ω", meaning="a score",
                      maps=[MapData(values, None, "head 0", (0,), 0)], row_labels=labels, col_labels=labels,
                      row_axis="query", col_axis="key", kind="signed", levels=(-5.0, 5.0))
    panel = MatrixPanel()
    qtbot.addWidget(panel)
    panel.resize(700, 700)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_matrix(data)
    qtbot.wait(50)
    shown = panel.maps[0].image.image
    k = panel.maps[0].stride                                  # about one sample per screen pixel
    assert k >= 3 and shown.shape == (-(-n // k), -(-n // k)) and max(shown.shape) <= heatmap.MAX_DISPLAY
    np.testing.assert_array_equal(shown, values[::k, ::k])
    hovered = []
    panel.hovered.connect(hovered.append)
    vb = panel.maps[0].plot.vb
    for row, col in ((1, 2), (n - 1, n - 2), (500, 1000)):    # cells between the drawn samples
        scene = vb.mapViewToScene(QtCore.QPointF(col + 0.5, row + 0.5))
        assert panel.cell_at(scene) == (0, row, col)
        panel._on_move(scene)
        assert f"ω[t{row}, t{col}] = {format_value(values[row, col])}" in hovered[-1]


def test_equivalences_at_gpt2_width_with_an_overflowing_naive_softmax(window, qtbot):
    """768-d random embeddings: the simplified stage's naive softmax overflows (nan cells); the
    equivalence view still opens, with finite colour levels."""
    import math
    c = window.controller
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(embeddings="random", text="a b c d e f", d_in=768, d_out=768, num_heads=12)
    window.docks["equivalences"].show()
    qtbot.waitUntil(lambda: bool(window.equivalences.datas), timeout=TRACE_TIMEOUT_MS)
    for data in window.equivalences.datas.values():
        assert all(math.isfinite(v) for v in data.levels)


@pytest.mark.parametrize("tokens,map_px", [(1024, 15.0), (1024, 120.0), (64, 40.0), (6, 300.0)])
def test_axis_labels_of_a_downsampled_map_do_not_overlap(tokens, map_px):
    """Regression: cells were taken as at least half a pixel wide, so a 1024-row map 15 px tall
    got 24 row labels on top of each other (a black smear beside each of 12 heads)."""
    from PySide6 import QtGui, QtWidgets
    from gui.heatmap import _fitted_ticks
    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    fm = QtGui.QFontMetrics(QtGui.QFont())
    labels = tuple(f"t{i}" for i in range(tokens))
    cell = map_px / tokens
    rows = _fitted_ticks(labels, cell, fm, None)                                   # vertical axis
    gaps = [(b - a) * cell for (a, _), (b, _) in zip(rows, rows[1:])]
    assert rows and all(g >= fm.height() for g in gaps), gaps
    widest = max(fm.horizontalAdvance(t) for t in labels)
    cols = _fitted_ticks(labels, cell, fm, widest)                                 # horizontal axis
    for (a, text), (b, _) in zip(cols, cols[1:]):
        assert fm.horizontalAdvance(text) <= (b - a) * cell, (text, (b - a) * cell)
