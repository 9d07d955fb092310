"""The cell inspector: a clicked cell's arithmetic with the real numbers, its sources framed."""
from __future__ import annotations

import math

import numpy as np

from tests.gui.fixtures import click_cell, go_to, shown, open_editor


def test_clicking_a_score_cell_shows_products_and_sum_equal_to_the_cell(window, qtbot):
    go_to(window, qtbot, "trainable.scores")
    panel, data = shown(window, "trainable", "attn_scores")
    click_cell(qtbot, panel, 1, 2)                       # ω[journey, starts]
    insp = window.inspector
    qtbot.waitUntil(lambda: insp.explanation is not None)
    cell = float(data.maps[0].values[1, 2])
    products, total = insp.shown_terms()
    trace = window.controller.trace
    q = trace["trainable", "queries"].numpy()[1].astype(np.float64)
    k = trace["trainable", "keys"].numpy()[2].astype(np.float64)
    np.testing.assert_allclose(products, q * k, atol=1e-7)
    assert abs(sum(products) - total) <= 1e-12
    assert abs(total - cell) <= 1e-6
    assert insp.explanation.index == (1, 2) and insp.explanation.name == "attn_scores"
    text = insp.text.toPlainText()
    assert "q_journey · k_starts" in text and f"{cell:.8f}"[:8] in text
    # the query row and the key row light up in their own heatmaps; the cell itself too
    frames = insp.marked()
    assert ("trainable", "queries", (), 0, 1, 2, 1) in frames
    assert ("trainable", "keys", (), 0, 2, 2, 1) in frames
    assert ("trainable", "attn_scores", (), 2, 1, 1, 1) in frames
    assert window.docks["inspector"].isVisible()
    # the step view's heatmaps draw exactly those frames (MatrixPanel.mark), blue on the cell
    drawn = [(f.key, f.lead, f.x, f.y, f.w, f.h, f.role) for p in window.step_view.panels for f in p.marked()]
    assert sorted(drawn) == sorted((k[:2], k[2], *k[3:], r) for k, r in zip(
        frames, ["clicked" if k[:2] == ("trainable", "attn_scores") else "source" for k in frames]))
    rects = [item for item in panel.maps[0].plot.items if getattr(item, "zValue", lambda: 0)() == 30]
    assert len(rects) == 1 and rects[0].pen().color().name() == "#2f6fd0"
    # another step: the model's marks follow the re-explained cell, the panels redraw them
    go_to(window, qtbot, "trainable.qkv")
    shown_now = [(f.key, f.x, f.y) for p in window.step_view.panels for f in p.marked()]
    assert (("trainable", "queries"), 0, 1) in shown_now and (("trainable", "keys"), 0, 2) in shown_now


def test_scaled_score_shows_the_division_by_sqrt_dk(window, qtbot):
    go_to(window, qtbot, "trainable.scaled")
    panel, data = shown(window, "trainable", "scaled_scores")
    click_cell(qtbot, panel, 0, 3)
    e = window.inspector.explanation
    raw = window.controller.trace["trainable", "attn_scores"].numpy()[0, 3]
    d_k = window.controller.trace.config.d_out
    assert abs(e.recomputed - raw / math.sqrt(d_k)) <= 1e-6
    assert abs(e.recomputed - data.maps[0].values[0, 3]) <= 1e-6
    assert f"√{d_k}" in window.inspector.text.toPlainText()
    assert ("trainable", "attn_scores", (), 3, 0, 1, 1) in window.inspector.marked()


def test_causal_weight_and_masked_cell_explained(window, qtbot):
    go_to(window, qtbot, "causal.approach_b")
    panel, data = shown(window, "causal", "attn_weights")
    click_cell(qtbot, panel, 2, 1)
    e = window.inspector.explanation
    assert e.kind == "softmax" and abs(e.recomputed - data.maps[0].values[2, 1]) <= 1e-6
    assert "exponentials" in window.inspector.text.toPlainText()
    click_cell(qtbot, panel, 1, 4)                      # above the diagonal: masked
    text = window.inspector.text.toPlainText()
    assert window.inspector.explanation.value == 0.0 and "masked" in text


def test_multihead_cells_use_their_head(window, qtbot):
    go_to(window, qtbot, "multihead.out_proj")
    panel, data = shown(window, "multihead", "context_vecs")
    click_cell(qtbot, panel, 3, 1)
    e = window.inspector.explanation
    assert abs(e.recomputed - data.maps[0].values[3, 1]) <= 1e-6
    assert {s.name for s in e.sources} == {"context_concat", "W_out", "b_out"}
    go_to(window, qtbot, "multihead.context_heads")
    panel, data = shown(window, "multihead", "context_heads")
    click_cell(qtbot, panel, 4, 0, map_index=1)          # head 1
    e = window.inspector.explanation
    assert e.index[-3:] == (1, 4, 0)
    assert abs(e.recomputed - data.maps[1].values[4, 0]) <= 1e-6
    frames = window.inspector.marked()
    assert any(f[1] == "attn_weights" and f[2][-1] == 1 for f in frames)   # head 1's weights row


def test_the_inspector_follows_an_edit(window, qtbot):
    from tests.gui.fixtures import wait_trace
    go_to(window, qtbot, "simplified.scores")
    panel, _data = shown(window, "simplified", "attn_scores")
    click_cell(qtbot, panel, 0, 0)
    before = window.inspector.explanation.value
    table = open_editor(window).embeddings
    wait_trace(window, qtbot, lambda: table.item(0, 1).setText("1.5"))      # x_Your[in0]
    after = window.inspector.explanation
    x = window.controller.trace["simplified", "inputs"].numpy()[0].astype(np.float64)
    assert after.value != before and abs(after.value - float(x @ x)) <= 1e-5


def test_sources_not_on_the_step_are_drawn_in_the_inspector(window, qtbot):
    go_to(window, qtbot, "multihead.weights")                # shows the weights only
    panel, data = shown(window, "multihead", "attn_weights")
    click_cell(qtbot, panel, 3, 1, map_index=1)              # head 1
    insp = window.inspector
    assert [d.key for d in insp.source_datas] == [("multihead", "masked_scores")]
    src = insp.source_datas[0]
    trace = window.controller.trace
    lead = (0, 1) if trace.config.batch > 1 else (1,)       # the book's fused section has batch 2
    assert [m.index for m in src.maps] == [lead]             # head 1's scores only
    np.testing.assert_array_equal(src.maps[0].values, trace["multihead", "masked_scores"].numpy()[lead])
    assert ("multihead", "masked_scores", lead, 0, 3, 6, 1) in insp.marked()     # the row, framed
    assert insp.source_host.isVisibleTo(window)
    go_to(window, qtbot, "causal.context")
    panel, data = shown(window, "causal", "context_vecs")
    click_cell(qtbot, panel, 2, 1)
    assert [d.key for d in insp.source_datas] == [("trainable", "values")]
    assert ("trainable", "values", (), 1, 0, 1, 6) in insp.marked()              # the value column
    assert ("causal", "dropped_weights", (), 0, 2, 6, 1) in insp.marked()        # on the step
    click_cell(qtbot, insp.source_panels[0], 4, 1)       # drill down: a value, from x · W_value
    assert insp.explanation.name == "values" and insp.explanation.index == (4, 1)
    assert abs(insp.shown_terms()[1] - window.controller.trace["trainable", "values"].numpy()[4, 1]) <= 1e-6
    assert [d.key for d in insp.source_datas] == [("simplified", "inputs"), ("trainable", "W_value")]
    go_to(window, qtbot, "trainable.scores")                   # both sources on the step: none below
    panel, data = shown(window, "trainable", "attn_scores")
    click_cell(qtbot, panel, 0, 0)
    assert insp.source_datas == [] and not insp.source_host.isVisibleTo(window)


def test_a_given_value_points_to_the_editor(window, qtbot):
    go_to(window, qtbot, "simplified.inputs")
    panel, data = shown(window, "simplified", "inputs")
    click_cell(qtbot, panel, 1, 1)
    e = window.inspector.explanation
    assert e.kind == "given" and e.value == data.maps[0].values[1, 1]
    assert "Edit inputs (Ctrl+I)" in window.inspector.text.toPlainText()
