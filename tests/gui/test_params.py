"""Live parameters: a change recomputes off the UI thread; an invalid one keeps the last trace."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from core import build_trace
from core.book import book_config
from tests.gui.conftest import TRACE_TIMEOUT_MS, open_window
from tests.gui.helpers import expected_maps, shown_maps
from tests.gui.test_window import panel_data, step_index


def set_spin(qtbot, spin, value):
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), str(value))
    qtbot.keyClick(spin.lineEdit(), QtCore.Qt.Key.Key_Return)


def test_changing_d_out_updates_the_maps(window, qtbot):
    c = window.controller
    c.go(step_index(c, "trainable.scores"))
    before = panel_data(window, "attn_scores").maps[0].values.copy()
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        set_spin(qtbot, window.params.d_out, 4)
    assert c.mode == "custom" and not window.params.book.isChecked()
    expected_cfg = book_config("v1").replace(d_out=4)       # built from the shown (v1) config
    assert c.trace.config == expected_cfg
    ref = build_trace(expected_cfg)
    for panel, images in zip(c.step.panels, shown_maps(window.step_view)):
        for img, exp in zip(images, expected_maps(panel, ref)):
            np.testing.assert_array_equal(img, exp)
    assert panel_data(window, "queries").shape == (6, 4)
    assert not np.allclose(panel_data(window, "attn_scores").maps[0].values, before)
    assert "d_out 4" in window.status_info.text()


def test_every_step_uses_the_custom_config(window, qtbot):
    c = window.controller
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        window.params.causal.click()                  # causal off, from the first step's config
    assert c.trace.config.causal is False
    c.go(step_index(c, "causal.approach_b"))
    d = panel_data(window, "masked_scores")
    assert d.maps[0].masked is None and np.isfinite(d.maps[0].values).all()


def test_invalid_heads_shows_the_message_and_keeps_the_trace(window, qtbot):
    c = window.controller
    c.go(step_index(c, "multihead.weights"))
    trace = c.trace
    images = [img.copy() for img in shown_maps(window.step_view)[0]]
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS) as blocker:
        set_spin(qtbot, window.params.num_heads, 3)
    assert blocker.args[0] == "num_heads"
    label = window.params.errors["num_heads"]
    assert label.isVisibleTo(window) and "divisible" in label.text()
    assert c.trace is trace
    for img, before in zip(shown_maps(window.step_view)[0], images):
        np.testing.assert_array_equal(img, before)
    # fixing it (d_out 3 with 3 heads) clears the message and recomputes
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        set_spin(qtbot, window.params.d_out, 3)
    assert not label.isVisibleTo(window)
    assert c.trace.config.d_out == 3 and c.trace.config.num_heads == 3
    assert len(window.step_view.panels[0].maps) == 3


def test_own_text_and_back_to_the_book(window, qtbot):
    c = window.controller
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        window.params.text.setFocus()
        window.params.text.selectAll()
        qtbot.keyClicks(window.params.text, "the cat sat on the mat")
        qtbot.keyClick(window.params.text, QtCore.Qt.Key.Key_Return)
    assert c.trace.tokens == ("the", "cat", "sat", "on", "the", "mat")
    assert panel_data(window, "inputs").row_labels[-2:] == ("the#2", "mat")
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        window.params.book.click()
    assert c.mode == "book" and c.trace.config == book_config("simplified")


def test_empty_text_is_refused_next_to_the_field(window, qtbot):
    c = window.controller
    trace = c.trace
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        window.params.text.setFocus()
        window.params.text.clear()
        qtbot.keyClicks(window.params.text, "   ")
        qtbot.keyClick(window.params.text, QtCore.Qt.Key.Key_Return)
    assert window.params.errors["text"].isVisibleTo(window)
    assert "empty" in window.params.errors["text"].text()
    assert c.trace is trace


def test_settings_persist_across_restarts(qtbot, settings_file):
    c, win = open_window(qtbot, settings_file)
    c.go(5)
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(d_out=4, num_heads=4)
    win.close()
    c2, win2 = open_window(qtbot, settings_file)
    assert c2.mode == "custom" and c2.index == 5
    assert c2.trace.config.d_out == 4 and c2.trace.config.num_heads == 4
    assert win2.params.d_out.value() == 4
    win2.close()


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
        c.trace_changed.connect(lambda: seen.append(sorted(c._traces)))
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


def test_field_errors_are_one_line_naming_the_field_with_the_whole_message_in_the_tooltip(window, qtbot):
    from core.config import MAX_TEXT_CHARS
    c, p = window.controller, window.params
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        c.set_params(d_out=4, num_heads=3)
    label = p.errors["num_heads"]
    assert label.isVisibleTo(window)
    assert label.text() == "num_heads: d_out (4) must be divisible by num_heads (3); try num_heads in {1, 2, 4}"
    assert label.toolTip() == "d_out (4) must be divisible by num_heads (3); try num_heads in {1, 2, 4}"
    # a text of 200,000 characters: Qt's line edit would cut it at 32767 without a word
    window.params.text.setText("w" * (2 * MAX_TEXT_CHARS))
    assert len(window.params.text.text()) == 2 * MAX_TEXT_CHARS
    long_message = "x " * 400 + "\nsecond line"
    p.show_error("text", long_message)
    shown = p.errors["text"].text()
    assert "\n" not in shown and shown.startswith("text: x x") and shown.endswith("…") and len(shown) <= 160
    assert p.errors["text"].toolTip() == long_message


def test_the_spin_boxes_refuse_what_the_config_refuses(window):
    """Their ranges come from core.config's limits, not a copy of them."""
    from core import config
    p = window.params
    assert {n: p.widgets[n].maximum() for n in ("d_in", "d_out", "num_heads", "batch")} == {
        "d_in": config.MAX_DIM, "d_out": config.MAX_DIM, "num_heads": config.MAX_HEADS, "batch": config.MAX_BATCH}
    assert p.widgets["seed"].maximum() == min(config.MAX_SEED, 2**31 - 1)
