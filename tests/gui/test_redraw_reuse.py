"""Redraws after a parameter change reuse what they can (items, documents, axis pictures);
what is on screen must be what a fresh draw would show."""
from __future__ import annotations

from PySide6 import QtWidgets

from tests.gui.clicks import go_to, shown, wait_trace


def _fresh_code_html(window) -> str:
    cp = window.code_panel
    cp._rows = None                    # forget the lines on show: the next refresh sets the whole document
    cp.refresh()
    return cp.code.toHtml()


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


def _code_on_screen(window):
    QtWidgets.QApplication.processEvents()
    code = window.code_panel.code
    return (code.verticalScrollBar().value(), code.horizontalScrollBar().value(),
            code.textCursor().position(), code.viewport().grab().toImage())


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


def test_colour_bar_follows_the_levels_after_a_seed_change(window, qtbot):
    c = window.controller
    go_to(window, qtbot, "trainable.scores")      # signed scores: levels change with the seed
    for seed in (11, 12):
        wait_trace(window, qtbot, lambda: c.set_params(seed=seed))
        window.step_view.refresh()
        panel, data = shown(window, "trainable", "attn_scores")
        assert tuple(panel.bar.levels()) == tuple(data.levels)
        for m in panel.maps:
            assert tuple(float(v) for v in m.image.levels) == tuple(data.levels)


def test_cell_values_after_a_seed_change_are_the_new_numbers(window, qtbot):
    """One head in detail (its values printed): after each new seed the cells print the new
    trace's weights, masked cells "0" in grey, dark cells in white, light ones in black."""
    import numpy as np
    from core.trace import build_trace
    c = window.controller
    sv = window.step_view
    go_to(window, qtbot, "multihead.weights")
    for seed in (41, 42, 41):
        wait_trace(window, qtbot, lambda: c.set_params(seed=seed))
        sv.head_box.setCurrentIndex(2)                      # head 1
        QtWidgets.QApplication.processEvents()
        m = sv.panels[0].maps[0]
        weights = build_trace(c.trace.config)["multihead", "attn_weights"].numpy()[0, 1]
        t = weights.shape[0]
        masked = np.triu(np.ones((t, t), dtype=bool), 1)
        expected = ["0" if masked[i, j] else f"{float(weights[i, j]):.4f}" for i in range(t) for j in range(t)]
        assert m.cells.isVisible()
        assert m.texts == expected, seed
        colours = [color.getRgb()[:3] for _text, color in m.cells._cells]
        assert colours[1] == (70, 70, 70)                  # row 0, column 1: masked
        assert colours[0] == (0, 0, 0)                     # weight 1.0: yellow cell, black text
        assert (255, 255, 255) in colours                  # dark (low weight) cells
        sv.head_box.setCurrentIndex(0)                      # all heads again
