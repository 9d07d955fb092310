"""ParamPanel (gui/params.py): a change recomputes off the UI thread; an invalid value, typed or
out of range, gives a message next to its control and keeps the last trace (exactly its numbers).
The bad-input rows use the shared ``good`` window (tests/gui/conftest.py)."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore
import pytest

from core import build_trace
from core.book import book_config
from tests.gui.fixtures import (GOOD, assert_kept, expected_maps, no_traceback, panel_data, screen, set_text,
                                shown_error, shown_maps, step_index, TRACE_TIMEOUT_MS, type_into_spin)


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


def test_a_seed_beyond_the_box_is_said_next_to_it(window, qtbot):
    """A lesson or saved settings may carry a seed up to 2**63-1; the box stops at 2**31-1 and
    showed 2147483647 as if that were the seed."""
    from tests.gui.fixtures import TRACE_TIMEOUT_MS
    c, p = window.controller, window.params
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(seed=2**40)
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert c.trace.config.seed == 2**40
    assert p.seed.value() == p.seed.maximum()
    label = p.errors["seed"]
    assert label.isVisibleTo(window) and str(2**40) in label.text()
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(seed=7)
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert p.seed.value() == 7 and not label.isVisibleTo(window)


def test_d_out_not_divisible_by_heads(good, qtbot, capfd):
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        type_into_spin(qtbot, good.params.num_heads, "3")
    msg = shown_error(good, "num_heads")
    assert "d_out (4) must be divisible by num_heads (3)" in msg and "{1, 2, 4}" in msg
    assert "divisible" in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


@pytest.mark.parametrize("name", ["num_heads", "d_out", "d_in", "batch", "seed", "dropout_seed"])
@pytest.mark.parametrize("typed", ["0", "", "abc"])
def test_a_value_the_box_cannot_take_is_put_back_with_a_message(good, qtbot, capfd, name, typed):
    """0 (below the range), an emptied box or letters: Qt puts the old value back; we say why."""
    c, before = good.controller, screen(good)
    spin = good.params.widgets[name]
    old = spin.value()
    type_into_spin(qtbot, spin, typed)
    qtbot.wait(50)
    if name in ("seed", "dropout_seed") and typed == "0":       # 0 is a valid seed
        qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
        assert c.trace.config.to_dict()[name] == 0
        return
    assert spin.value() == old
    msg = shown_error(good, name)
    assert f"between {spin.minimum()} and {spin.maximum()}" in msg and f"kept {old}" in msg
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


@pytest.mark.parametrize("name, typed, shown", [
    ("num_heads", "-1", "1"),               # the minus sign is refused as it is typed
    ("seed", "-7", "7"),
    ("dropout_seed", "-5", "5"),
    ("num_heads", "99999", "99"),           # digits past the maximum are refused as typed
    ("d_out", "1000000000000", "1000"),
    ("d_in", "100000", "1000"),
    ("batch", "100000", "10"),
])
def test_negative_or_absurdly_large_never_reaches_the_config(good, qtbot, name, typed, shown):
    c = good.controller
    spin = good.params.widgets[name]
    type_into_spin(qtbot, spin, typed)
    assert spin.text() == shown
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert spin.minimum() <= spin.value() <= spin.maximum()
    assert c.params[name] == int(shown)
    if name != "num_heads" or GOOD["d_out"] % int(shown) == 0:
        assert c.trace.config.to_dict()[name] == int(shown)
    else:                                   # 99 heads do not divide d_out 4: a message, the trace kept
        assert "divisible" in shown_error(good, "num_heads")


@pytest.mark.parametrize("typed", ["1.5", "1", "-0.1", "nan", "inf"])
def test_dropout_box_stays_in_0_to_0_99(good, qtbot, typed):
    c = good.controller
    type_into_spin(qtbot, good.params.dropout, typed)
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    v = good.params.dropout.value()
    assert 0.0 <= v <= 0.99
    assert 0.0 <= c.trace.config.dropout < 1.0


@pytest.mark.parametrize("text", ["", "   ", "\t \t"])
def test_empty_or_whitespace_text(good, qtbot, capfd, text):
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        set_text(qtbot, good, text)
    assert "is empty; type at least one word" in shown_error(good, "text")
    assert "empty" in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


def test_text_over_the_token_limit(good, qtbot, capfd):
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        set_text(qtbot, good, "w " * 4097)
    assert "has 4097 tokens; the limit is 4096" in shown_error(good, "text")
    assert_kept(good, qtbot, before)
    no_traceback(capfd)
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
