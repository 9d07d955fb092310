"""gui/controller.py: requests to the worker, the latest wins, the book's sections, memory guard, restore."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from core import build_trace
from core.book import book_config
from tests.gui.fixtures import expected_maps, open_window, panel_data, shown_maps, step_index, TRACE_TIMEOUT_MS


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


def test_every_step_uses_the_custom_config(window, qtbot):
    c = window.controller
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        window.params.causal.click()                  # causal off, from the first step's config
    assert c.trace.config.causal is False
    c.go(step_index(c, "causal.approach_b"))
    d = panel_data(window, "masked_scores")
    assert d.maps[0].masked is None and np.isfinite(d.maps[0].values).all()


def test_rapid_changes_the_latest_wins(window, qtbot):
    c = window.controller
    busy = []
    c.busy.connect(busy.append)
    for d_out in range(3, 9):
        c.set_params(d_out=d_out, num_heads=1)
    qtbot.waitUntil(lambda: not c.is_busy() and c.trace.config.d_out == 8, timeout=TRACE_TIMEOUT_MS)
    assert c.params["d_out"] == 8 and busy[0] is True and busy[-1] is False
    assert window.params.d_out.value() == 8


def test_invalid_saved_settings_fall_back_to_the_book(qtbot, settings_file):
    import json
    saved = QtCore.QSettings(settings_file, QtCore.QSettings.Format.IniFormat)
    saved.setValue("config/mode", "custom")
    saved.setValue("config/params", json.dumps({**book_config("v1").to_dict(), "d_out": 3}))
    saved.setValue("config/step", 999)
    saved.sync()
    c, win = open_window(qtbot, settings_file)
    qtbot.waitUntil(lambda: c.mode == "book" and c.trace is not None, timeout=TRACE_TIMEOUT_MS)
    assert c.index == len(c.steps) - 1                    # step 999 clamped to the last
    assert "num_heads" in win.statusBar().currentMessage()
    win.close()


def test_book_delivers_the_current_steps_section_first(qtbot):
    from gui.controller import Controller
    c = Controller()
    try:
        c.go(len(c.steps) - 1)                      # multihead.out_proj: section "fused"
        seen = []
        c.trace_changed.connect(lambda: seen.append(sorted(c.model.traces)))
        c.use_book()
        qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
        assert seen[0] == ["fused"]
        assert seen[-1] == sorted(c.sections)
        assert c.trace_for(c.steps[0]) is not None
    finally:
        c.shutdown()


def test_every_step_of_a_custom_config_equals_the_core(window, qtbot):
    """Biases (per head too), a batch of 3 shown at item 1, 3 heads: every map as the core has it."""
    c = window.controller
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(qkv_bias=True, d_out=6, num_heads=3, batch=3, dropout=0.25, seed=7)
    ref = build_trace(c.trace.config)
    window.step_view.batch_box.setValue(1)
    for i, step in enumerate(c.steps):
        c.go(i)
        panels = [p for p in step.panels if p.key in ref]
        shown = shown_maps(window.step_view)
        assert len(shown) == len(panels), step.id
        for panel, images in zip(panels, shown):
            expected = expected_maps(panel, ref, batch_index=1)
            assert len(images) == len(expected), (step.id, panel.key)
            for img, exp in zip(images, expected):
                np.testing.assert_array_equal(img, exp, err_msg=f"{step.id} {panel.key}")


def test_an_invalid_change_drops_the_result_still_in_flight(window, qtbot):
    c = window.controller
    trace = c.trace
    # the worker still delivers the stale result; the controller (connected first) drops it
    with qtbot.waitSignal(c._worker.done, timeout=TRACE_TIMEOUT_MS):
        c.set_params(d_out=4, num_heads=2)      # valid, computing…
        c.set_params(num_heads=3)               # …then invalid: its error must stay on screen
        assert window.params.errors["num_heads"].isVisibleTo(window)
    assert not c.is_busy()
    assert c.trace is trace
    assert window.params.errors["num_heads"].isVisibleTo(window)
