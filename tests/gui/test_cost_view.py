"""The Cost view: a small run fills the table and plots with the measured rows; a cancel keeps the UI live."""
from __future__ import annotations

import csv
import time

import numpy as np
import pytest
from PySide6 import QtCore

from core import memory
from core.cost import CostRunner, CostSettings
from gui.cost_view import COLUMNS, CostView, format_bytes, row_cells

RUN_TIMEOUT_MS = 300_000


@pytest.fixture
def small_view(qtbot):
    view = CostView(CostRunner(CostSettings(tokens=(16, 32, 64), d_model=48, num_heads=4, repeats=1)))
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    yield view
    view.close()


def table_texts(view) -> list[list[str]]:
    return [[view.table.item(r, c).text() for c in range(len(COLUMNS))] for r in range(view.table.rowCount())]


def test_a_small_run_fills_the_table_with_the_measured_numbers(small_view, qtbot, tmp_path):
    view = small_view
    assert not view.export_button.isEnabled()
    with qtbot.waitSignal(view.finished, timeout=RUN_TIMEOUT_MS) as outcome:
        view.run_button.click()
    assert outcome.args == ["finished"]
    assert [r.tokens for r in view.rows] == [16, 32, 64]
    assert table_texts(view) == [row_cells(r) for r in view.rows]
    for texts, row in zip(table_texts(view), view.rows):
        T = row.tokens
        assert texts[0] == str(T)
        assert texts[COLUMNS.index("one T×T map")] == format_bytes(T * T * 4)
        assert texts[COLUMNS.index("h × T×T")] == format_bytes(4 * T * T * 4)
        cfg = view.runner.settings.config(T)
        assert texts[COLUMNS.index("guard estimate")] == format_bytes(memory.estimate_bytes(cfg, T))
        assert float(texts[COLUMNS.index("trace ms")]) == pytest.approx(row.trace_ms, rel=0.05, abs=0.001)
    # the plots show the same numbers; the reference line has slope 2 on log-log axes
    x, y = view.curves["trace_ms"].xData, view.curves["trace_ms"].yData  # as given (getData is log10)
    assert list(x) == [16, 32, 64] and np.allclose(y, [r.trace_ms for r in view.rows])
    rx, ry = view.curves["time_ref"].xData, view.curves["time_ref"].yData
    assert np.allclose(np.diff(np.log(ry)) / np.diff(np.log(rx)), 2.0)
    assert ry[-1] == pytest.approx(view.rows[-1].trace_ms)
    assert view.status.text() == "measured 3 sizes"
    assert view.run_button.isEnabled() and not view.cancel_button.isEnabled() and view.export_button.isEnabled()
    view.export_csv(str(tmp_path / "cost.csv"))
    with open(tmp_path / "cost.csv", newline="") as fh:
        parsed = list(csv.DictReader(fh))
    assert [int(p["tt_map_bytes"]) for p in parsed] == [r.tt_map_bytes for r in view.rows]


def _event_loop_latency(qtbot) -> float:
    """Seconds from posting a zero-delay timer to its running on the UI thread."""
    fired = []
    start = time.perf_counter()
    QtCore.QTimer.singleShot(0, lambda: fired.append(time.perf_counter()))
    qtbot.waitUntil(lambda: bool(fired), timeout=10_000)
    return fired[0] - start


def test_a_cancelled_run_leaves_the_ui_responsive(qtbot):
    # GPT-2 sizes: the 1024-token size keeps the worker busy for seconds
    view = CostView(CostRunner(CostSettings(tokens=(64, 1024, 2048), repeats=1)))
    qtbot.addWidget(view)
    view.show()
    outcomes = []
    view.finished.connect(outcomes.append)
    with qtbot.waitSignal(view.progressed, timeout=RUN_TIMEOUT_MS,
                          check_params_cb=lambda done, total, text: text.startswith("1024 ")):
        view.run_button.click()
    assert view.is_running()
    # while the worker computes, the UI thread still turns its event loop over promptly
    # (a generous bound: the check is that it is not blocked for the run, not how fast it is)
    assert max(_event_loop_latency(qtbot) for _ in range(5)) < 2.0
    view.cancel_button.click()
    assert view.status.text() == "cancelling after the current run…" and not view.cancel_button.isEnabled()
    assert _event_loop_latency(qtbot) < 2.0
    qtbot.waitUntil(lambda: bool(outcomes), timeout=RUN_TIMEOUT_MS)
    assert outcomes == ["cancelled"]
    assert [r.tokens for r in view.rows] == [64] and view.table.rowCount() == 1
    assert view.status.text() == "cancelled after 1 size"
    assert view.run_button.isEnabled() and not view.cancel_button.isEnabled()
    assert _event_loop_latency(qtbot) < 2.0
    view.close()
