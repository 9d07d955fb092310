"""Legible maps (issue 12): shared colour scales, per-row colours for weights, thumbnails of many
heads that open one head, a map on its own with zoom, hover framing what a cell is made of,
minimum cell sizes and rotated column labels."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from core.book import book_config
from core.config import AttentionConfig
from core.trace import build_trace
from gui import heatmap
from gui.heatmap import MatrixPanel, is_thumbnails, label_cell, min_cell, panel_min_size, prints_values
from gui.matrices import MapData, MatrixData
from gui.view_model import CUSTOM, ViewModel


def _painted_panel(qtbot, data: MatrixData, size: tuple[int, int]) -> MatrixPanel:
    """A MatrixPanel drawing ``data`` at ``size``, shown and painted once."""
    panel = MatrixPanel()
    qtbot.addWidget(panel)
    panel.set_matrix(data)
    panel.resize(*size)
    panel.show()
    panel.grab()
    return panel


def _model(trace, step_id: str, mode: str = "book") -> ViewModel:
    model = ViewModel()
    traces = {step.section: trace for step in model.steps} if mode == "book" else {CUSTOM: trace}
    model.set_traces(mode, traces)
    model.go([s.id for s in model.steps].index(step_id))
    return model


@pytest.fixture(scope="module")
def v1_trace():
    return build_trace(book_config("v1"))


@pytest.fixture(scope="module")
def six_heads():
    return build_trace(AttentionConfig(embeddings="random", text="a b c d e f", d_in=4, d_out=12,
                                       num_heads=6, seed=3))


def _view(qtbot, model):
    from gui.step_view import StepView
    view = StepView(model)
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    QtWidgets.QApplication.processEvents()
    return view


def test_raw_and_scaled_scores_share_one_scale(qtbot, v1_trace):
    """2.5: the raw and the scaled scores on one colour scale (the scaled ones look paler, as
    they are √d_k times smaller); the colour bar says so."""
    model = _model(v1_trace, "trainable.scaled")
    raw, scaled = model.shown
    omega = v1_trace["trainable", "attn_scores"].numpy()
    top = float(np.abs(omega).max())
    assert omega.min() > 0                      # the book's ω are all positive: sequential, from the smallest
    lo = float(v1_trace["trainable", "scaled_scores"].numpy().min())
    assert raw.kind == scaled.kind == "seq" and raw.levels == scaled.levels == (lo, top)
    assert float(np.abs(scaled.maps[0].values).max()) < top / 1.4       # √d_k = √2: paler
    view = _view(qtbot, model)
    for panel in view.panels:
        assert panel.bar.getAxis("right").labelText == "min…max, shared"


def test_unrelated_panels_keep_their_own_scales(v1_trace):
    """2.3: Q, K and V are not compared cell by cell: each keeps its own scale."""
    model = _model(v1_trace, "trainable.qkv")
    for d in model.shown:
        v = d.maps[0].values
        top = float(np.abs(v).max())
        own = (float(v.min()), top) if v.min() >= 0 else (-top, top)      # all ≥ 0: sequential from the smallest
        assert d.levels == own and "shared_scale" not in d.extra


def test_weights_per_row_colours_are_remembered(qtbot, v1_trace):
    from gui.step_view import COLOUR_KEY
    model = _model(v1_trace, "trainable.weights_softmax")
    view = _view(qtbot, model)
    weights = next(p for p, d in zip(view.panels, view.datas) if d.key == ("trainable", "attn_weights"))
    exact = v1_trace["trainable", "attn_weights"].numpy()
    np.testing.assert_array_equal(weights.maps[0].image.image, exact.astype(np.float32))   # the values
    view.colour_box.setCurrentIndex(view.colour_box.findData("row"))
    img = np.asarray(weights.maps[0].image.image, dtype=np.float64)
    np.testing.assert_allclose(img, exact / exact.max(axis=1, keepdims=True), rtol=1e-6)  # float32 division
    assert weights.bar.getAxis("right").labelText.startswith("per row")
    assert weights.maps[0].texts[:6] == [f"{v:.4f}" for v in exact[0]]       # the values stay exact
    assert QtCore.QSettings().value(COLOUR_KEY, type=str) == "row"
    again = _view(qtbot, model)
    assert again.colour_mode == "row"


def test_the_former_per_row_box_carries_over(qtbot, v1_trace):
    """A learner who had ticked "weights: per-row colours" keeps per-row colours."""
    from gui.step_view import ROW_SCALE_KEY
    QtCore.QSettings().setValue(ROW_SCALE_KEY, True)
    view = _view(qtbot, _model(v1_trace, "trainable.weights_softmax"))
    assert view.colour_mode == "row"


def test_weights_default_to_a_spread_scale_named_on_the_bar(qtbot, v1_trace):
    """Weights of a 6-token example (about 0.1…0.2) are coloured from their smallest to their
    largest value by default, not on 0…1 (where they are all one purple); the bar says so, and
    the shared 0–1 scale is one choice away."""
    model = _model(v1_trace, "trainable.weights_softmax")
    view = _view(qtbot, model)
    k = next(i for i, d in enumerate(view.datas) if d.key == ("trainable", "attn_weights"))
    panel = view.panels[k]
    exact = v1_trace["trainable", "attn_weights"].numpy()
    assert exact.max() - exact.min() < 0.3                       # the case: a narrow range of weights
    assert view.colour_mode == "spread" and view.colour_box.isVisibleTo(view)
    assert panel.data.levels == pytest.approx((float(exact.min()), float(exact.max())))
    assert tuple(panel.bar.levels()) == pytest.approx((float(exact.min()), float(exact.max())))
    assert panel.bar.getAxis("right").labelText == "spread"
    # the colours of the extreme cells differ by most of the colour map (not one block)
    lut = heatmap.colormap("prob").getLookupTable(nPts=256)
    lo, hi = panel.data.levels
    at = lambda v: lut[int(round((v - lo) / (hi - lo) * 255))]
    assert np.abs(at(exact.max()).astype(int) - at(exact.min()).astype(int)).sum() > 200
    view.colour_box.setCurrentIndex(view.colour_box.findData("fixed"))
    assert view.panels[k].data.levels == (0.0, 1.0)
    assert view.panels[k].bar.getAxis("right").labelText == "fixed 0–1"
    np.testing.assert_array_equal(view.panels[k].maps[0].image.image, exact.astype(np.float32))


def test_compared_weights_share_one_spread_range(qtbot):
    """3.5 (approach A beside B): maps with one scale key share one spread range (the union of
    their ranges), so equal weights keep equal colours; the difference keeps its own scale."""
    trace = build_trace(book_config("causal"))
    model = _model(trace, "causal.compare")
    view = _view(qtbot, model)
    a, b, diff = view.panels
    wa = trace["causal", "renormalized_weights"].numpy()
    wb = trace["causal", "attn_weights"].numpy()
    keep = np.tril(np.ones(wa.shape[-2:], dtype=bool))
    keep[0] = False                  # query 1 sees only itself (weight 1): left out of the range
    lo = min(wa[..., keep].min(), wb[..., keep].min())
    hi = max(wa[..., keep].max(), wb[..., keep].max())
    assert 0.1 < lo and hi < 0.9
    assert a.data.levels == b.data.levels == pytest.approx((float(lo), float(hi)))
    assert a.bar.getAxis("right").labelText == "spread, shared"
    assert diff.data.kind == "diff"
    view.colour_box.setCurrentIndex(view.colour_box.findData("fixed"))
    assert view.panels[0].data.levels == view.panels[1].data.levels == (0.0, 1.0)
    assert view.panels[0].bar.getAxis("right").labelText == "shared 0–1"


def test_all_positive_values_get_a_sequential_scale():
    """The book's embeddings (all in 0…1) and torch.rand weights are coloured sequentially from
    their smallest value, not on a diverging ±max scale; values of both signs stay diverging."""
    from gui.matrices import resolve_panel
    from gui.steps import Panel
    trace = build_trace(book_config("v1"))
    x = trace["simplified", "inputs"].numpy()
    assert x.min() >= 0
    d = resolve_panel(Panel(key=("simplified", "inputs")), trace)
    assert d.kind == "seq" and d.levels == pytest.approx((float(x.min()), float(x.max())))
    assert heatmap.colormap(d.kind).name == "viridis"                      # sequential, not CET-D1
    assert heatmap.bar_caption(d) == "min…max"
    s = resolve_panel(Panel(key=("trainable", "attn_scores")), trace)
    v = trace["trainable", "attn_scores"].numpy()
    if v.min() < 0:
        assert s.kind == "signed"


def test_many_heads_are_thumbnails_and_a_click_opens_one(qtbot, six_heads):
    model = _model(six_heads, "multihead.weights", mode="custom")
    view = _view(qtbot, model)
    panel = view.panels[0]
    assert len(panel.maps) == 6 and all(m.thumbnail for m in panel.maps)
    assert panel.maps[0].texts == []                      # no values in a thumbnail
    clicked = []
    model.cell_clicked.connect(lambda d, m, r, c: clicked.append((d.maps[m].head, r, c)))
    panel.thumbnail_clicked.emit(4, 2, 1)
    assert model.head == 4
    assert len(view.panels[0].maps) == 1 and not view.panels[0].maps[0].thumbnail
    assert clicked == [(4, 2, 1)]                          # and the inspector gets that cell


def test_a_map_on_its_own_zooms_and_keeps_hover_and_click(qtbot, v1_trace):
    from gui.map_window import MapWindow
    model = _model(v1_trace, "trainable.scores")
    view = _view(qtbot, model)
    k = [d.key for d in view.datas].index(("trainable", "attn_scores"))
    view.open_map(k, 0)
    win = view.map_windows[-1]
    qtbot.addWidget(win)
    assert isinstance(win, MapWindow) and win.panel.data.key == ("trainable", "attn_scores")
    before = win.panel.size()
    win.zoom_in.click()
    win.zoom_in.click()
    QtWidgets.QApplication.processEvents()
    assert win.panel.width() > before.width() * 1.5 and win.zoom == pytest.approx(2.25)
    hovered = []
    model.hover_changed.connect(hovered.append)
    scene = win.panel.maps[0].plot.vb.mapViewToScene(QtCore.QPointF(3.5, 1.5))
    win.panel._on_move(scene)
    score = v1_trace["trainable", "attn_scores"].numpy()[1, 3]
    assert f"{score:.4f}" in hovered[-1]
    clicked = []
    model.cell_clicked.connect(lambda d, m, r, c: clicked.append((d.key, r, c)))
    win.panel.cell_clicked.emit(0, 1, 3)
    assert clicked == [(("trainable", "attn_scores"), 1, 3)]
    win.fit.click()
    assert win.zoom == 1.0


def test_hovering_a_score_frames_its_query_and_key_rows(qtbot, v1_trace):
    """2.4: ω[2, 4] = q⁽²⁾ · k⁽⁴⁾: hovering it frames row 2 of Q and row 4 of K."""
    model = _model(v1_trace, "trainable.scores")
    view = _view(qtbot, model)
    keys = [d.key for d in view.datas]
    k = keys.index(("trainable", "attn_scores"))
    view.panels[k].hovered_cell.emit(0, 2, 4)
    q = view.panels[keys.index(("trainable", "queries"))].marked()
    kk = view.panels[keys.index(("trainable", "keys"))].marked()
    assert [(f.y, f.h, f.role) for f in q] and all(f.role == "hover" for f in q)
    assert {f.y for f in q} == {2} and sum(f.w for f in q) == v1_trace["trainable", "queries"].shape[-1]
    assert {f.y for f in kk} == {4}
    assert [(f.x, f.y) for f in view.panels[k].marked() if f.role == "hovered"] == [(4, 2)]
    view.panels[k].hovered_cell.emit(-1, -1, -1)            # the mouse left: no frames
    assert view.panels[k].marked() == []


def _data(rows: int, cols: int, maps: int = 1, labels=None) -> MatrixData:
    rng = np.random.default_rng(0)
    labels = labels or tuple(f"tok{i}" for i in range(max(rows, cols)))
    return MatrixData(key=("trainable", "attn_scores"), title="ω", symbol="ω", meaning="scores",
                      maps=[MapData(rng.normal(size=(rows, cols)), None, f"head {h}" if maps > 1 else "")
                            for h in range(maps)],
                      row_labels=labels[:rows], col_labels=labels[:cols], row_axis="query", col_axis="key",
                      kind="signed", levels=(-3.0, 3.0))


@pytest.mark.parametrize("size, values", [((300, 200), False), ((1200, 900), True)])
def test_a_small_map_keeps_every_label_at_any_panel_size_and_prints_its_values_where_they_fit(qtbot, size, values):
    """A 10×10 map with word labels: the panel never gets smaller than one label a row and a
    column (a comparison step shrinks its maps rather than stacking or scrolling them); columns
    are rotated, not dropped; the values are printed where the cells hold them (≥ 8 px), hidden
    where they do not (never drawn too small or overlapping)."""
    words = ("The", "old", "dog", "chased", "the", "quick", "fox", "which", "bit", "him")
    data = _data(10, 10, labels=words)
    assert prints_values(data) and min_cell(data)[0] >= label_cell()
    panel = _painted_panel(qtbot, data, size)
    assert panel.width() >= panel_min_size(data)[0] and panel.height() >= panel_min_size(data)[1]
    m = panel.maps[0]
    assert m.plot.getAxis("top").rotated
    assert [t for _r, t in m.plot.getAxis("top").drawn] == list(words)
    assert [t for _r, t in m.plot.getAxis("left").drawn] == list(words)
    assert m.cells.isVisible() == values
    if values:
        assert len(m.texts) == 100
        assert min(m.cells.drawn[0][0].height(), m.cells.font().pixelSize()) >= 8


@pytest.mark.parametrize("rows, cols, maps", [(64, 64, 1), (64, 1, 2), (6, 6, 12)])
def test_at_its_minimum_size_a_panel_keeps_its_colour_bar(qtbot, rows, cols, maps):
    """A title wider than the maps (3.5's "A_renorm − A   max |diff| = …", 4.4's long head
    titles): pyqtgraph does not shrink a title, it pushes the colour bar out of the panel, so
    the panel's minimum width counts its titles (the step view then scrolls instead)."""
    data = dataclasses.replace(_data(rows, cols, maps), title="A_renorm − A   max |diff| = 5.96e-08 · long")
    data = dataclasses.replace(data, maps=[dataclasses.replace(m, title=f"batch 0 · head {k} of many")
                                           for k, m in enumerate(data.maps)])
    panel = MatrixPanel()
    qtbot.addWidget(panel)
    panel.set_matrix(data)
    panel.resize(*panel_min_size(data))
    panel.show()
    panel.grab()
    view = QtCore.QRectF(panel.viewport().rect()).adjusted(-0.5, -0.5, 0.5, 0.5)
    bar = QtCore.QRectF(panel.mapFromScene(panel.bar.mapRectToScene(panel.bar.boundingRect())).boundingRect())
    assert bar.width() >= 8 and view.contains(bar), (bar, view)
    for m in panel.maps:
        cells = QtCore.QRectF(panel.mapFromScene(m.image.mapRectToScene(m.image.boundingRect())).boundingRect())
        assert view.contains(cells), (cells, view)


def test_twelve_heads_are_thumbnails_that_fit_a_small_panel():
    data = _data(6, 6, maps=12)
    assert is_thumbnails(data) and not prints_values(data)
    w, h = panel_min_size(data)
    assert w <= 500 and h <= 400


def test_split_step_shows_the_matrix_before_the_view(qtbot):
    """4.4: X W_q as the (T, d_out) matrix it is before .view/.transpose, heads side by side
    with lines between them; a click on one of its cells is the same number in the head's map."""
    trace = build_trace(AttentionConfig(embeddings="random", text="a b c d e", d_in=3, d_out=6,
                                        num_heads=3, seed=4))
    model = _model(trace, "multihead.split", mode="custom")
    merged = model.shown[0]
    X = trace["simplified", "inputs"].numpy().astype(np.float64)
    W = trace["multihead", "W_query"].numpy().astype(np.float64)
    # float32 products against a float64 reference: agree to ~1e-6 relative
    np.testing.assert_allclose(merged.maps[0].values, X @ W, rtol=1e-5, atol=1e-6)
    assert merged.shape == (5, 6) and merged.extra["head_width"] == 2
    view = _view(qtbot, model)
    assert len(view.panels[0].maps[0].separators) == 2          # lines between the 3 heads
    clicked = []
    model.cell_clicked.connect(lambda d, m, r, c: clicked.append((d.key, d.maps[m].head, r, c, d.maps[m].values[r, c])))
    view.panels[0].cell_clicked.emit(0, 3, 5)                   # column 5 = head 2, column 1
    assert clicked == [(("multihead", "queries"), 2, 3, 1, merged.maps[0].values[3, 5])]


def test_the_colour_bar_caption_keeps_the_numbers_unscaled(qtbot):
    """4.5 (scores within ±0.31): with a caption, pyqtgraph's axis would print 300 for 0.3
    and "(x0.001)" after the caption."""
    model = _model(build_trace(book_config("fused")), "multihead.scores")
    view = _view(qtbot, model)
    axis = view.panels[0].bar.getAxis("right")
    assert axis.labelText == "shared scale" and axis.autoSIPrefixScale == 1.0
    assert "x0.0" not in axis.labelString()


@pytest.mark.parametrize("size", [(1500, 420), (420, 1100)])
def test_square_cells_sit_right_beside_their_labels_in_a_roomy_panel(qtbot, size):
    """Square cells in a panel wider (or taller) than they need: the spare room goes to the
    right (or below), never between the row labels and the first column, or between the
    column labels and the first row (a learner would read the labels as detached)."""
    data = _data(6, 6)
    data = dataclasses.replace(data, maps=[dataclasses.replace(data.maps[0], title="head 0")])
    panel = _painted_panel(qtbot, data, size)
    m = panel.maps[0]
    cells = m.image.mapRectToScene(m.image.boundingRect())
    left = m.plot.getAxis("left").sceneBoundingRect()
    top = m.plot.getAxis("top").sceneBoundingRect()
    assert abs(cells.width() - cells.height()) <= 1, cells             # still square
    assert abs(cells.left() - left.right()) <= 3, (cells, left)
    assert abs(cells.top() - top.bottom()) <= 3, (cells, top)
    # the spare room exists (the test means something) and lies after the cells
    box = m.plot.vb.sceneBoundingRect()
    assert max(box.width() - cells.width(), box.height() - cells.height()) > 100, (box, cells)
    # a click on the first and the last cell still finds them
    assert m.cell_at(cells.topLeft() + QtCore.QPointF(2, 2)) == (0, 0)
    assert m.cell_at(cells.bottomRight() - QtCore.QPointF(2, 2)) == (5, 5)
    # the axis titles and the map's title are centred on the cells, not on the spare room
    for item, centre in ((m.plot.getAxis("top").label, cells.center().x()),
                         (m.plot.titleLabel.item, cells.center().x())):
        assert abs(item.sceneBoundingRect().center().x() - centre) <= 3, (item.sceneBoundingRect(), cells)
    label = m.plot.getAxis("left").label
    assert abs(label.sceneBoundingRect().center().y() - cells.center().y()) <= 3, (label.sceneBoundingRect(), cells)


@pytest.mark.parametrize("cfg", [book_config("causal"), book_config("fused"),
                                 AttentionConfig(embeddings="random", text="a b c d e f g", d_in=4, d_out=6,
                                                 num_heads=3, seed=9, dropout=0.5, batch=2)])
def test_weights_take_their_range_from_the_spread_pass(cfg, monkeypatch):
    """Weights (dropout's too, > 1) get their colours from the spread range and the rows it
    leaves out, read once: the same kind and levels as the plain masked pass over every cell
    (checked by forcing it), and the same spread range."""
    from gui import matrices
    from gui.steps import load_steps
    trace = build_trace(cfg)
    panels = [p for s in load_steps() for p in s.panels if p.key in trace]
    quick = {p: matrices.resolve_panel(p, trace) for p in panels}
    weights = [p for p in panels if trace[p.key].term.colours == "prob" and not p.is_diff and not p.rows]
    assert weights and any(quick[p].kind == "prob" and quick[p].levels == (0.0, 1.0) for p in weights)
    plain = matrices._value_range
    monkeypatch.setattr(matrices, "_unmasked_range", lambda maps, _spread: plain(maps))
    fresh = build_trace(cfg)                                        # nothing cached in it
    for p in panels:
        exact = matrices.resolve_panel(p, fresh)
        assert (exact.kind, exact.levels, exact.extra.get("spread")) == \
            (quick[p].kind, quick[p].levels, quick[p].extra.get("spread")), p.key


def _masks(n: int, rng) -> list:
    """Masks the range passes meet: none, causal, random (with rows of 0, 1 and more cells), all hidden."""
    free = rng.random((n, n)) < 0.3
    free[0] = False
    free[min(1, n - 1)] = False
    free[min(1, n - 1), 0] = True                                   # a row with one cell
    return [None, np.triu(np.ones((n, n), dtype=bool), 1), ~free, np.ones((n, n), dtype=bool)]


@pytest.mark.parametrize("n", [1, 2, 5, 130])
def test_the_range_read_with_the_spread_pass_is_the_masked_range(n):
    """``_unmasked_range`` (the spread range and the rows it leaves out) equals a plain masked
    min/max over every finite unmasked cell, for each kind of mask, with nan and ±inf among the
    cells and with no cell at all (min and max are exact: equality)."""
    from gui.matrices import MapData, _spread_bounds, _unmasked_range, _value_range
    rng = np.random.default_rng(n)
    for masked in _masks(n, rng):
        for poison in (None, np.nan, np.inf):
            maps = [MapData(rng.normal(size=(n, n)) * (k + 1), masked) for k in range(3)]
            if poison is not None:
                maps[1].values[n - 1, 0] = poison
            assert _unmasked_range(maps, _spread_bounds(maps)) == _value_range(maps), (masked, poison)


def _with_term(trace, key, **traits):
    """``trace`` with the intermediate at ``key`` under a copy of its term with other traits."""
    item = trace[key]
    changed = dataclasses.replace(item, term=dataclasses.replace(item.term, **traits))
    stages = {**trace.stages, key[0]: {**trace.stages[key[0]], key[1]: changed}}
    return dataclasses.replace(trace, stages=stages)


def test_the_maps_follow_their_terms_display_traits(six_heads):
    """What is masked, the colour scale and the lines between the heads' columns come from the
    intermediate's term (core/stages TERMS), not its name: the same numbers under a term with
    other traits are drawn as that term says."""
    from gui.matrices import resolve_panel
    from gui.steps import Panel
    weights, other = Panel(key=("multihead", "attn_weights")), Panel(key=("multihead", "context_vecs"))
    future = np.triu(np.ones((6, 6), dtype=bool), k=1)                  # key after query: hidden
    drawn = resolve_panel(weights, six_heads)
    assert drawn.kind == "prob" and drawn.levels == (0.0, 1.0)
    assert all(np.array_equal(m.masked, future) for m in drawn.maps)
    plain = resolve_panel(weights, _with_term(six_heads, weights.key, masked=False, colours="signed"))
    assert plain.kind == "seq" and all(m.masked is None for m in plain.maps)   # signed, but all ≥ 0
    w = six_heads[weights.key].numpy()
    assert plain.levels == pytest.approx((float(w.min()), float(w.max())))
    scores = six_heads["multihead", "attn_scores"].numpy()
    assert scores.min() < 0 < scores.max()
    signed = resolve_panel(Panel(key=("multihead", "attn_scores")), six_heads)
    top = float(np.abs(scores).max())
    assert signed.kind == "signed" and signed.levels == pytest.approx((-top, top))
    assert "head_width" not in resolve_panel(other, six_heads).extra
    columns = resolve_panel(other, _with_term(six_heads, other.key, head_columns=True))
    assert columns.extra["head_width"] == 12 // 6 and "between heads" in columns.col_axis
    scores = Panel(key=("multihead", "attn_scores"))
    assert all(m.masked is None for m in resolve_panel(scores, six_heads).maps)
    hidden = resolve_panel(scores, _with_term(six_heads, scores.key, masked=True))
    assert all(np.array_equal(m.masked, future) and np.isnan(m.display()[future]).all() for m in hidden.maps)


def test_token_ids_are_a_labelled_row_of_numbers(qtbot, v1_trace):
    """Integer maps (stage 5's token ids) are not coloured on a ±10000 scale: neutral cells
    with the numbers printed (no decimals), the pieces as labels, no colour bar."""
    import torch

    from core.stages.schema import term
    from core.trace import Intermediate
    from gui.matrices import resolve_panel
    from gui.steps import Panel
    tokens = ("[CLS]", "the", "dog", "chased", "him", "[SEP]")
    ids = torch.tensor([101, 1996, 3899, 6664, 2032, 102])
    t = term("ids", "tokenizer(text)", "WordPiece ids", "token")
    item = Intermediate("simplified", "ids_test", ids, t, ("token",), (tokens,))
    stages = {**v1_trace.stages, "simplified": {**v1_trace.stages["simplified"], "ids_test": item}}
    trace = dataclasses.replace(v1_trace, stages=stages)
    data = resolve_panel(Panel(key=("simplified", "ids_test")), trace)
    assert data.kind == "ids" and data.shape == (1, 6) and data.col_labels == tokens
    assert "= 3899" in data.describe(0, 0, 2) and "3899.0" not in data.describe(0, 0, 2)
    cmap = heatmap.colormap("ids").getLookupTable(nPts=8)
    assert (cmap == cmap[0]).all()                                  # one neutral colour
    panel = _painted_panel(qtbot, data, (700, 160))
    assert prints_values(data)
    qtbot.waitUntil(lambda: panel.maps[0].texts == [str(int(v)) for v in ids])
    assert not panel.bar.isVisible()


@pytest.mark.parametrize("n", [2, 3, 129, 300])
def test_the_spread_range_of_causal_maps_reads_the_visible_cells_only(n):
    """The spread range of a causal map (row 0 left out: its one cell) is read in row blocks, the
    visible columns left of each block plainly and its diagonal square through the mask: the same
    (min, max) as a masked pass over the whole map, values above the diagonal ignored whatever
    they are; a nan among the visible cells takes the careful pass (finite cells only)."""
    from gui.matrices import MapData, _spread_range
    rng = np.random.default_rng(n)
    masked = np.triu(np.ones((n, n), dtype=bool), 1)
    maps = [MapData(np.where(masked, 50.0 * (k + 1), rng.normal(size=(n, n))), masked) for k in range(3)]
    visible = ~masked
    visible[0] = False
    want = (min(float(m.values[visible].min()) for m in maps), max(float(m.values[visible].max()) for m in maps))
    assert _spread_range(maps) == want
    maps[1].values[n - 1, 0] = np.nan
    finite = [m.values[visible & np.isfinite(m.values)] for m in maps]
    assert _spread_range(maps) == (min(float(f.min()) for f in finite), max(float(f.max()) for f in finite))


@pytest.mark.parametrize("stride, cols", [(1, None), (3, None), (3, 1), (4, 1)])
def test_the_display_copy_hides_masked_and_undefined_cells(stride, cols):
    """MapData.display / the pooled rows' copy: float32, every ``stride``-th row (and column), NaN
    where the mask hides a cell or the value is nan or ±inf (drawn transparent, hatched), the
    other cells the values as float32; the exact values untouched."""
    from gui.matrices import MapData
    rng = np.random.default_rng(stride)
    values = rng.normal(size=(10, 9))
    values[2, 3], values[5, 0], values[7, 8] = np.nan, np.inf, -np.inf
    kept = values.copy()
    for masked in (None, np.triu(np.ones((10, 9), dtype=bool), 1), rng.random((10, 9)) < 0.3):
        c = stride if cols is None else cols
        want = values[::stride, ::c].astype(np.float32)
        hide = ~np.isfinite(want) if masked is None else ~np.isfinite(want) | masked[::stride, ::c]
        want[hide] = np.nan
        got = MapData(values, masked)._display(stride, cols)
        assert got.dtype == np.float32 and not got.flags.writeable
        np.testing.assert_array_equal(got, want)                 # (nan compares equal here)
        np.testing.assert_array_equal(values, kept)
