"""The window opens on the book's example and every step shows the core's numbers."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from core import build_trace
from core.book import book_config
from gui.steps import step_numbers
from tests.gui.helpers import expected_maps, shown_maps

Key = QtCore.Qt.Key


def step_index(controller, step_id: str) -> int:
    return next(i for i, s in enumerate(controller.steps) if s.id == step_id)


def panel_data(win, name: str, stage: str | None = None):
    for d in win.step_view.datas:
        if d.key[1] == name and (stage is None or d.key[0] == stage):
            return d
    raise AssertionError(f"{name} not shown; shown: {[d.key for d in win.step_view.datas]}")


def test_window_opens_on_the_book_example(window):
    c = window.controller
    assert window.windowTitle() == "Attention Stepper"
    assert c.mode == "book" and c.index == 0
    assert window.stack.currentWidget() is window.step_view
    x = panel_data(window, "inputs").maps[0].values
    np.testing.assert_allclose(x[1], [0.55, 0.87, 0.66], atol=1e-6)   # journey
    assert panel_data(window, "inputs").row_labels[:2] == ("Your", "journey")
    assert "6 tokens" in window.status_info.text() and "CPU" in window.status_info.text()
    assert window.step_bar.counter.text() == f"1 / {len(c.steps)}"
    assert window.params.book.isChecked()
    devices = [window.params.device.itemData(i) for i in range(window.params.device.count())]
    assert devices == (["cpu", "cuda"] if c.cuda_available else ["cpu"])


def test_keyboard_visits_every_step_and_each_image_equals_the_core(window, qtbot):
    c = window.controller
    refs = {}
    visited = []
    qtbot.keyClick(window, Key.Key_Home)
    for n in range(len(c.steps) + 2):          # two extra presses: Next stops at the end
        step = c.step
        if not visited or visited[-1] != c.index:
            visited.append(c.index)
            trace = refs.setdefault(step.section, build_trace(book_config(step.section)))
            panels = [p for p in step.panels if p.key in trace or not p.optional]
            shown = shown_maps(window.step_view)
            assert len(shown) == len(panels), step.id
            for panel, images in zip(panels, shown):
                expected = expected_maps(panel, trace)
                assert len(images) == len(expected), (step.id, panel.key)
                for img, exp in zip(images, expected):
                    np.testing.assert_array_equal(img, exp, err_msg=f"{step.id} {panel.key}")
            assert window.step_view.title.text().startswith(step_numbers()[c.index] + " ")
            assert window.navigator.currentItem().text(0).startswith(step_numbers()[c.index] + " ")
            assert window.step_bar.counter.text() == f"{c.index + 1} / {len(c.steps)}"
        qtbot.keyClick(window, Key.Key_Right)
    assert visited == list(range(len(c.steps)))
    qtbot.keyClick(window, Key.Key_Left)
    assert c.index == len(c.steps) - 2
    qtbot.keyClick(window, Key.Key_PageUp)
    assert c.index == len(c.steps) - 3
    qtbot.keyClick(window, Key.Key_PageDown)
    assert c.index == len(c.steps) - 2
    qtbot.keyClick(window, Key.Key_Home)
    assert c.index == 0
    qtbot.keyClick(window, Key.Key_End)
    assert c.index == len(c.steps) - 1


@pytest.mark.parametrize("step_id, name, row, expected", [
    ("simplified.query_scores", "attn_scores", 0, [0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865]),
    ("simplified.query_normalise", "attn_weights", 0, [0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581]),
    ("simplified.query_context", "context_vecs", 0, [0.4419, 0.6515, 0.5683]),
    ("trainable.query_2", "queries", 0, [0.4306, 1.4551]),
    ("trainable.query_2", "attn_scores", 0, [1.2705, 1.8524, 1.8111, 1.0795, 0.5577, 1.5440]),
    ("trainable.weights_softmax", "attn_weights", 1, [0.1500, 0.2264, 0.2199, 0.1311, 0.0906, 0.1820]),
    ("trainable.context", "context_vecs", 1, [0.3061, 0.8210]),
    ("trainable.context", "context_vecs", 0, [0.2996, 0.8053]),
    ("trainable.v2", "context_vecs", 0, [-0.0739, 0.0713]),
    ("causal.dropped", "dropped_weights", 2, [0.7599, 0.6194, 0.6206, 0, 0, 0]),
    ("causal.batch", "context_vecs", 0, [-0.4519, 0.2216]),
    ("multihead.wrapper_concat", "wrapper_context_vecs", 0, [-0.4519, 0.2216, 0.4772, 0.1063]),
    ("multihead.out_proj", "context_vecs", 0, [0.3190, 0.4858]),
])
def test_book_preset_shows_the_chapters_numbers(window, step_id, name, row, expected):
    c = window.controller
    c.go(step_index(c, step_id))
    values = panel_data(window, name).maps[0].values
    np.testing.assert_allclose(values[row], expected, atol=5e-5)


def test_hover_names_the_cell_and_its_meaning(window, qtbot):
    c = window.controller
    c.go(step_index(c, "trainable.scores"))
    k = [d.key[1] for d in window.step_view.datas].index("attn_scores")
    panel = window.step_view.panels[k]
    text = panel.describe(0, 1, 2)
    assert text.startswith("score[journey, starts] = q_journey · k_starts = 1.8111")
    # a real mouse move over the cell's centre gives the same text in the hover line
    scene_pos = panel.maps[0].plot.vb.mapViewToScene(QtCore.QPointF(2.5, 1.5))
    with qtbot.waitSignal(panel.hovered, timeout=2000) as blocker:
        panel.scene().sigMouseMoved.emit(scene_pos)
    assert blocker.args[0] == text
    assert window.step_view.hover.text() == text


def test_masked_cells_are_transparent_and_say_why(window):
    c = window.controller
    c.go(step_index(c, "causal.approach_b"))
    d = panel_data(window, "masked_scores")
    img = window.step_view.panels[0].maps[0].image.image
    assert np.isnan(img[0, 1]) and np.isfinite(img[1, 0])
    assert np.isneginf(d.maps[0].values[0, 1])
    assert "masked" in d.describe(0, 0, 1) and "−∞" in d.describe(0, 0, 1)
    assert window.step_view.panels[0].maps[0].hatch.rect().width() == 6


def test_multihead_grid_and_head_selector(window, qtbot):
    c = window.controller
    c.go(step_index(c, "multihead.weights"))
    sv = window.step_view
    assert sv.head_box.isVisibleTo(window) and sv.head_box.count() == 3
    assert len(sv.panels[0].maps) == 2 and sv.panels[0].bar is not None
    trace = build_trace(book_config("fused"))
    sv.head_box.setCurrentIndex(2)        # head 1
    shown = sv.panels[0].maps
    assert len(shown) == 1
    exp = trace["multihead", "attn_weights"].numpy()[0, 1].copy()
    exp[np.triu(np.ones_like(exp, dtype=bool), 1)] = np.nan
    np.testing.assert_array_equal(shown[0].image.image, exp)
    assert sv.panels[0].data.levels == (0.0, 1.0)      # weights: sequential, fixed to [0, 1]
