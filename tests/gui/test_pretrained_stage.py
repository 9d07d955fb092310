"""Stage 5 in the window: the real all-MiniLM-L6-v2's numbers on the chapter's steps, loaded
off the UI thread on first use; the gallery opens a head's steps; layer/head controls; a missing
model package gives one line. References come from core.pretrained.build_pretrained."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6 import QtCore

from core.pretrained import build_pretrained
from core.pretrained_config import EXAMPLE_TEXT, PretrainedConfig
from tests.gui.fixtures import step_index, TRACE_TIMEOUT_MS

MODEL_TIMEOUT_MS = 120_000


def go_and_wait(qtbot, win, step_id: str):
    win.model.go(step_index(win.model, step_id))
    qtbot.waitUntil(lambda: win.model.pretrained is not None and not win.controller.pretrained.busy,
                    timeout=MODEL_TIMEOUT_MS)


def shown(win, name: str):
    data = next(d for d in win.model.shown if d.key == ("pretrained", name))
    return data


@pytest.fixture
def win(window):
    """A fresh window per test (conftest's ``window``), named as these tests read it."""
    return window


def test_the_window_starts_without_loading_the_model_and_loads_it_off_the_ui_thread(qtbot, win, monkeypatch):
    from core import minilm
    pre = win.controller.pretrained
    assert not pre.started and not pre._worker.is_running()              # nothing at the window's start
    threads = []
    real = minilm.load

    def recording_load():
        threads.append(threading.current_thread())
        return real()

    monkeypatch.setattr(minilm, "load", recording_load)
    win.model.go(step_index(win.model, "pretrained.weights"))
    # the step shows the loading message until the model is there, and the UI keeps running
    assert win.model.trace is None
    assert "Loading" in win.model.pretrained_status or "Computing" in win.model.pretrained_status
    assert win.step_view.formula.text() == win.model.pretrained_status
    qtbot.waitUntil(lambda: win.model.pretrained is not None, timeout=MODEL_TIMEOUT_MS)
    assert threads and all(t is not threading.main_thread() for t in threads)


def test_stage5_shows_the_real_models_numbers_and_the_controls_change_them(qtbot, win):
    go_and_wait(qtbot, win, "pretrained.weights")
    assert win.pretrained_bar.isVisible() and not win.params.isVisible()
    ref = build_pretrained(PretrainedConfig(text=EXAMPLE_TEXT, layer=0, device="cpu"))
    data = shown(win, "attn_weights")
    assert data.row_labels == ref.labels                                # WordPiece pieces as labels
    assert len(data.maps) == 12
    for h, m in enumerate(data.maps):
        # same code path on the same CPU: tolerance only for a differently ordered reduction
        np.testing.assert_allclose(m.values, ref["attn_weights"].numpy()[h], atol=1e-6)
    # the layer control recomputes layer 3; the head control shows one head
    win.pretrained_bar.layer.setValue(3)
    qtbot.waitUntil(lambda: win.model.pretrained.config.layer == 3 and not win.controller.pretrained.busy,
                    timeout=MODEL_TIMEOUT_MS)
    win.pretrained_bar.head.setCurrentIndex(1 + 10)                     # head 10
    ref3 = build_pretrained(PretrainedConfig(text=EXAMPLE_TEXT, layer=3, head=10, device="cpu"))
    data = shown(win, "attn_weights")
    assert [m.head for m in data.maps] == [10]
    np.testing.assert_allclose(data.maps[0].values, ref3["attn_weights"].numpy(), atol=1e-6)
    assert not np.allclose(data.maps[0].values, ref["attn_weights"].numpy()[10], atol=1e-3)
    # the explanation names the layer, the options; the code panel has the stage's line
    assert "layer 3" in win.explanation.toPlainText() and "attention only" in win.explanation.toPlainText()


def test_a_gallery_click_opens_that_heads_steps(qtbot, win):
    go_and_wait(qtbot, win, "pretrained.gallery")
    qtbot.waitUntil(lambda: win.pretrained_panel.gallery is not None, timeout=MODEL_TIMEOUT_MS)
    assert win.stack.currentWidget() is win.pretrained_panel
    gallery = win.pretrained_panel.gallery_view
    rect = gallery.thumbnail_rect(2, 4)
    qtbot.mouseClick(gallery, QtCore.Qt.MouseButton.LeftButton, pos=rect.center().toPoint())
    qtbot.waitUntil(lambda: win.model.pretrained.config.layer == 2 and not win.controller.pretrained.busy,
                    timeout=MODEL_TIMEOUT_MS)
    assert win.model.step.id == "pretrained.weights" and win.model.head == 4
    assert win.stack.currentWidget() is win.step_view
    ref = build_pretrained(PretrainedConfig(text=EXAMPLE_TEXT, layer=2, head=4, device="cpu"))
    np.testing.assert_allclose(shown(win, "attn_weights").maps[0].values, ref["attn_weights"].numpy(), atol=1e-6)


def test_hide_special_and_full_layer_are_options_of_the_trace(qtbot, win):
    go_and_wait(qtbot, win, "pretrained.weights")
    win.pretrained_bar.hide_special.setChecked(True)
    qtbot.waitUntil(lambda: win.model.pretrained.config.hide_special and not win.controller.pretrained.busy,
                    timeout=MODEL_TIMEOUT_MS)
    data = shown(win, "attn_weights_no_special")
    assert "[CLS]" not in data.row_labels and "[SEP]" not in data.row_labels
    np.testing.assert_allclose(data.maps[0].values.sum(axis=-1), 1.0, atol=1e-5)   # float32 row sums
    win.pretrained_bar.scope.setCurrentIndex(1)
    qtbot.waitUntil(lambda: win.model.pretrained.config.full_layer and not win.controller.pretrained.busy,
                    timeout=MODEL_TIMEOUT_MS)
    win.model.go(step_index(win.model, "pretrained.full_layer"))
    ref = build_pretrained(PretrainedConfig(text=EXAMPLE_TEXT, layer=0, full_layer=True, device="cpu"))
    np.testing.assert_allclose(shown(win, "layer_output").maps[0].values, ref["layer_output"].numpy(), atol=1e-6)


def test_a_missing_model_package_gives_one_line_naming_what_to_install(qtbot, win, monkeypatch):
    from core import minilm
    monkeypatch.setattr(minilm, "_model", None)
    monkeypatch.setattr(minilm, "PACKAGE", "no_such_model_package_xyz")
    messages = []
    win.controller.pretrained.error.connect(messages.append)
    win.model.go(step_index(win.model, "pretrained.inputs"))
    qtbot.waitUntil(lambda: bool(messages), timeout=MODEL_TIMEOUT_MS)
    assert messages == [minilm.MISSING] and "\n" not in messages[0] and minilm.DISTRIBUTION in messages[0]
    assert win.model.trace is None and win.step_view.formula.text() == minilm.MISSING


def test_inspector_code_panel_and_snippet_work_on_stage5(qtbot, win):
    import subprocess
    import sys

    go_and_wait(qtbot, win, "pretrained.weights")
    win.model.set_head(2)
    k = next(i for i, d in enumerate(win.model.shown) if d.key == ("pretrained", "attn_weights"))
    win.model.click(k, 0, 10, 1)                                         # "him" → "the", head 2
    e = win.inspector.explanation
    ref = build_pretrained(PretrainedConfig(text=EXAMPLE_TEXT, layer=0, device="cpu"))
    assert (e.stage, e.name, e.index) == ("pretrained", "attn_weights", (2, 10, 1))
    # the inspector's softmax of the scaled row, recomputed in float64 from float32 inputs
    assert e.recomputed == pytest.approx(float(ref["attn_weights"].numpy()[2, 10, 1]), abs=1e-6)
    assert "softmax" in win.code_panel.highlighted_line()
    code = win.code_panel.current_snippet()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "tensor(" in run.stdout


def test_the_weights_step_says_how_much_the_average_word_parks_on_cls(qtbot, win):
    go_and_wait(qtbot, win, "pretrained.weights")
    win.pretrained_bar.layer.setValue(2)
    qtbot.waitUntil(lambda: win.model.pretrained.config.layer == 2 and not win.controller.pretrained.busy,
                    timeout=MODEL_TIMEOUT_MS)
    a = build_pretrained(PretrainedConfig(text=EXAMPLE_TEXT, layer=2, device="cpu"))["attn_weights"].numpy()
    share = a[:, 1:-1, 0].mean()                 # the word rows' weight on [CLS], every head
    assert f"the average word puts {share:.0%} of its weight on [CLS]" in win.explanation.toPlainText()


def test_every_stage5_text_renders_without_leftover_fields_and_every_term_has_a_step():
    import re

    from core.stages import STAGES
    from gui.steps import load_steps
    from gui.texts import render
    steps = [s for s in load_steps() if s.stage == "pretrained"]
    shown = {p.key for s in steps for p in s.panels}
    assert {("pretrained", n) for n, t in STAGES["pretrained"].terms.items() if t.shown} - shown == set()
    assert not STAGES["pretrained"].terms["ff_hidden"].shown      # T × 1536: exported, not drawn
    for options in ({}, {"hide_special": True, "full_layer": True, "layer": 3}):
        trace = build_pretrained(PretrainedConfig(text=EXAMPLE_TEXT, device="cpu", **options))
        for step in steps:
            for text in (step.heading, step.formula, step.text):
                out = render(text, trace, escape=True)
                assert not re.search(r"\{\{|\}\}", out), (step.id, out)


def test_all_12_heads_on_the_token_lines_and_the_explanation_name_the_heads_drawn(qtbot, win):
    go_and_wait(qtbot, win, "pretrained.lines")
    panel = win.pretrained_panel
    qtbot.waitUntil(lambda: panel.gallery is not None, timeout=MODEL_TIMEOUT_MS)
    assert win.model.head is None and win.pretrained_bar.head.currentText() == "all 12"
    # all 12: every head of the layer drawn, and the explanation says so
    assert panel.lines_grid.isVisible() and not panel.lines_view.isVisible()
    grid = panel.lines_grid
    weights = panel.gallery.attn_weights.numpy()
    for h, view in enumerate(grid.views):
        assert [w for _k, w, _a in view.lines()] == pytest.approx(list(weights[0, h, grid.query] * 8.0), abs=1e-5)
    assert "layer 0 · all 12 heads" in win.explanation.toPlainText()
    # one head: that head drawn large, named in the title and in the explanation
    win.pretrained_bar.head.setCurrentIndex(1 + 3)
    assert win.model.head == 3
    assert panel.lines_view.isVisible() and not grid.isVisible()
    assert panel.lines_view.title.startswith("layer 0, head 3")
    assert "layer 0 · head 3 ·" in win.explanation.toPlainText()
    assert "all 12 heads" not in win.explanation.toPlainText()
    row = weights[0, 3, panel.lines_view.query]
    assert [w for _k, w, _a in panel.lines_view.lines()] == pytest.approx(list(row * 8.0), abs=1e-5)
    # the gallery step: every layer
    win.model.go(step_index(win.model, "pretrained.gallery"))
    assert "all 6 layers × 12 heads" in win.explanation.toPlainText()


def test_a_chapter_cell_is_not_said_to_come_from_another_book_section_on_stage_5(qtbot, win):
    from tests.gui.fixtures import click_cell, go_to
    from tests.gui.fixtures import shown as shown_panel
    go_to(win, qtbot, "trainable.weights_softmax")
    panel, _data = shown_panel(win, "trainable", "attn_weights")
    click_cell(qtbot, panel, 1, 0)
    insp = win.inspector
    qtbot.waitUntil(lambda: insp.cell is not None)
    go_and_wait(qtbot, win, "pretrained.weights")
    text = insp.text.toPlainText()
    assert insp.cell is None and "another Book section" not in text
    assert "stage 5 runs the real model" in text
    # a stage-5 cell names the model and layer as its origin, not a Book preset
    go_and_wait(qtbot, win, "pretrained.scores")
    qtbot.waitUntil(lambda: win.step_view.datas and win.step_view.datas[0].key == ("pretrained", "attn_scores"))
    click_cell(qtbot, win.step_view.panels[0], 2, 1)
    qtbot.waitUntil(lambda: insp.cell is not None)
    assert "all-MiniLM-L6-v2, layer 0" in insp.text.toPlainText()
    assert "Book preset" not in insp.text.toPlainText()
    go_to(win, qtbot, "trainable.weights_softmax")
    text = insp.text.toPlainText()
    assert "chapter's settings, not the real model" in text and "another Book section" not in text
