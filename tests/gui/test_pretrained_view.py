"""The pretrained views (head gallery, token lines), built offscreen on made-up weights whose
every number is known, so the pixels and line widths can be checked against them."""
import threading

import numpy as np
import pytest
import torch
from PySide6 import QtCore, QtGui

from core.minilm import Pieces
from core.pretrained import Gallery
from gui.pretrained_view import MAX_LINE_PX, SPECIAL_NOTE, PretrainedPanel, _lut

PIECES = Pieces(ids=(101, 1, 2, 3, 4, 102), pieces=("[CLS]", "the", "dog", "bit", "him", "[SEP]"),
                special=(True, False, False, False, False, True))


def made_up_gallery(seed: int = 0, pieces: Pieces = PIECES) -> Gallery:
    """(6, 12, T, T) rows that sum to 1, every head different."""
    gen = torch.Generator().manual_seed(seed)
    t = len(pieces)
    logits = torch.randn(6, 12, t, t, generator=gen) * 3
    return Gallery(pieces, torch.softmax(logits, dim=-1))


class Recorder:
    """A compute function that remembers the thread it ran on."""

    def __init__(self, result_for=None):
        self.threads = []
        self.result_for = result_for or (lambda text: made_up_gallery())

    def __call__(self, text):
        self.threads.append(threading.current_thread())
        return self.result_for(text)


def ready_panel(qtbot, compute, text="the dog bit him"):
    panel = PretrainedPanel(compute)
    qtbot.addWidget(panel)
    panel.resize(1366, 768)
    panel.show()
    with qtbot.waitSignal(panel.loader.ready, timeout=10_000):
        panel.set_text(text)
    return panel


def test_the_gallery_is_computed_off_the_ui_thread_and_draws_every_weight(qtbot):
    compute = Recorder()
    panel = ready_panel(qtbot, compute)
    assert compute.threads and all(t is not threading.main_thread() for t in compute.threads)
    view = panel.gallery_view
    assert view.grid() == (6, 12)
    image = view.grab().toImage()
    lut = _lut()
    weights = panel.gallery.attn_weights.numpy()
    t = weights.shape[-1]
    for layer, head in [(0, 0), (2, 4), (5, 11)]:
        rect = view.thumbnail_rect(layer, head)
        for i, j in [(0, 0), (3, 1), (5, 4)]:
            x = int(rect.left() + (j + 0.5) * rect.width() / t)
            y = int(rect.top() + (i + 0.5) * rect.height() / t)
            expected = lut[int(round(float(weights[layer, head, i, j]) * 255))]
            got = QtGui.QColor(image.pixel(x, y))
            assert (got.red(), got.green(), got.blue()) == tuple(int(v) for v in expected)


def test_thumbnails_fit_the_area_and_stay_square(qtbot):
    panel = ready_panel(qtbot, Recorder())
    view = panel.gallery_view
    first, last = view.thumbnail_rect(0, 0), view.thumbnail_rect(5, 11)
    assert first.width() == first.height() and first.width() > 20
    assert last.right() < view.width() and last.bottom() < view.height()
    view.resize(view.width() // 2, view.height())
    assert view.thumbnail_rect(5, 11).right() < view.width()


def test_a_click_on_a_thumbnail_emits_its_layer_and_head_and_shows_its_lines(qtbot):
    panel = ready_panel(qtbot, Recorder())
    centre = panel.gallery_view.thumbnail_rect(3, 7).center().toPoint()
    with qtbot.waitSignal(panel.head_clicked, timeout=2000) as sig:
        qtbot.mouseClick(panel.gallery_view, QtCore.Qt.MouseButton.LeftButton, pos=centre)
    assert sig.args == [3, 7]
    lines = panel.lines_view
    query = lines.query
    assert lines.query_label() == "him"                               # the last word by default
    row = panel.gallery.attn_weights[3, 7, query].numpy()
    widths = [w for _k, w, _a in lines.lines()]
    alphas = [a for _k, _w, a in lines.lines()]
    assert widths == pytest.approx(list(row * MAX_LINE_PX))            # width = weight
    assert alphas == [int(round(float(w) * 255)) for w in row]         # opacity = weight


def test_token_lines_are_drawn_where_the_weight_is_and_nowhere_else(qtbot):
    panel = ready_panel(qtbot, Recorder())
    lines = panel.lines_view
    weights = np.zeros((6, 6), dtype=np.float32)
    weights[4] = [0.0, 0.0, 0.75, 0.25, 0.0, 0.0]                     # "him": dog 0.75, bit 0.25
    lines.set_weights(weights, PIECES.pieces, query=4)
    image = lines.grab().toImage()
    _top, _row, left_x, right_x = lines._rows()

    def midpoint_darkness(key: int) -> int:
        x = (left_x + 4 + right_x - 4) / 2
        y = (lines.row_y(4) + lines.row_y(key)) / 2
        c = QtGui.QColor(image.pixel(int(x), int(round(y))))
        return 255 * 3 - (c.red() + c.green() + c.blue())

    assert midpoint_darkness(2) > midpoint_darkness(3) > 0           # heavier weight: darker line
    assert midpoint_darkness(0) == 0 and midpoint_darkness(5) == 0   # weight 0: nothing drawn


def test_clicking_a_query_token_moves_the_lines(qtbot):
    panel = ready_panel(qtbot, Recorder())
    lines = panel.lines_view
    _top, _row, left_x, _r = lines._rows()
    with qtbot.waitSignal(lines.query_changed, timeout=2000):
        qtbot.mouseClick(lines, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(int(left_x) - 10, int(lines.row_y(2))))
    assert lines.query == 2


def test_hide_special_shows_the_renormalised_weights_and_says_so(qtbot):
    panel = ready_panel(qtbot, Recorder())
    panel.hide_special.setChecked(True)
    shown, labels = panel.gallery.no_special()
    assert labels == ("the", "dog", "bit", "him")
    assert np.array_equal(panel.gallery_view._weights, shown.numpy())
    assert SPECIAL_NOTE in panel.gallery_view.note and SPECIAL_NOTE in panel.lines_view.title
    assert panel.lines_view.query_label() == "him"                    # the same piece, at its new index
    row = shown[0, 0, labels.index("him")].numpy()
    assert [w for _k, w, _a in panel.lines_view.lines()] == pytest.approx(list(row * MAX_LINE_PX))


def test_the_latest_text_wins(qtbot):
    release = threading.Event()

    def result_for(text):
        if text == "slow":
            release.wait(10)
            return made_up_gallery(1)
        return made_up_gallery(2)

    panel = PretrainedPanel(Recorder(result_for))
    qtbot.addWidget(panel)
    panel.set_text("slow")
    with qtbot.waitSignal(panel.loader.ready, timeout=10_000):
        panel.set_text("fast")
    release.set()
    panel.loader.wait()
    qtbot.wait(50)                                                    # a stale result would arrive now
    assert torch.equal(panel.gallery.attn_weights, made_up_gallery(2).attn_weights)


def test_a_failure_is_one_status_line(qtbot):
    def broken(text):
        raise ValueError("text: makes 600 WordPiece pieces with [CLS] and [SEP]; the model takes at most 512\nmore")

    panel = PretrainedPanel(broken)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.status, timeout=5000, check_params_cb=lambda m: "512" in m) as sig:
        panel.set_text("long")
    assert "\n" not in sig.args[0]
    panel.loader.wait()


def test_on_the_real_model_the_example_shows_him_looking_at_dog(qtbot):
    from core.pretrained import find_query_key_head, gallery
    from core.pretrained_config import EXAMPLE_TEXT

    panel = ready_panel(qtbot, lambda text: gallery(text, device="cpu"), EXAMPLE_TEXT)
    panel.hide_special.setChecked(True)
    best = find_query_key_head(panel.gallery, "him", "dog")          # found by a scan, not hard-coded
    panel.select(best.layer, best.head)
    lines = panel.lines_view
    assert lines.query_label() == "him"
    key, width, _alpha = max(lines.lines(), key=lambda line: line[1])
    assert lines._labels[key] == "dog" and width == pytest.approx(best.score * MAX_LINE_PX)


def long_pieces(words: int) -> Pieces:
    return Pieces(ids=tuple(range(words + 2)), pieces=("[CLS]",) + tuple(f"w{i}" for i in range(words)) + ("[SEP]",),
                  special=(True,) + (False,) * words + (True,))


def test_long_texts_are_max_pooled_in_the_thumbnails_and_say_so(qtbot):
    from gui.pretrained_view import max_pooled

    pieces = long_pieces(150)
    panel = ready_panel(qtbot, Recorder(lambda text: made_up_gallery(3, pieces)))
    view = panel.gallery_view
    view.grab()
    side = int(view.thumbnail_rect(0, 0).width() * view.devicePixelRatioF())
    assert side < 152 and view.pooled()
    assert view._image(0, 0, side).width() == side                     # one pixel per pooled block
    weights = panel.gallery.attn_weights.numpy()
    pooled = max_pooled(weights, side)
    edges = np.linspace(0, 152, side + 1).astype(int)
    # each pooled cell is the largest weight of its block
    assert pooled[1, 2, 3, 4] == weights[1, 2, edges[3]:edges[4], edges[4]:edges[5]].max()
    assert pooled.shape == (6, 12, side, side)


def test_a_one_cell_stripe_of_a_189_piece_text_stays_visible_in_its_thumbnail(qtbot):
    """A previous-token head on 189 pieces: every row holds one weight of 1 just below the
    diagonal. Drawn ~60 px wide, every pixel row of the thumbnail must still show a cell of
    weight 1 (sampling every k-th row/column would lose most of the stripe)."""
    pieces = long_pieces(187)
    t = len(pieces.ids)
    weights = torch.full((6, 12, t, t), 1.0 / t)
    stripe = torch.zeros(t, t)
    stripe[torch.arange(1, t), torch.arange(0, t - 1)] = 1.0
    stripe[0, 0] = 1.0
    weights[0, 2] = stripe
    panel = ready_panel(qtbot, Recorder(lambda text: Gallery(pieces, weights)))
    view = panel.gallery_view
    image = view.grab().toImage()
    rect = view.thumbnail_rect(0, 2)
    assert rect.width() * view.devicePixelRatioF() < t                 # smaller than one pixel a cell
    top = tuple(int(v) for v in _lut()[255])
    for y in range(int(rect.top()) + 1, int(rect.bottom()) - 1):
        row = [QtGui.QColor(image.pixel(x, y)) for x in range(int(rect.left()) + 1, int(rect.right()) - 1)]
        assert any((c.red(), c.green(), c.blue()) == top for c in row), f"pixel row {y}: the stripe is lost"
    assert "max, not mean" in view.note_text()


def test_max_pool_stride_keeps_a_stripe_that_a_stride_drops():
    from gui.pooling import max_pool_stride

    img = np.zeros((9, 9), dtype=np.float32)
    img[np.arange(1, 9), np.arange(0, 8)] = 1.0                       # the sub-diagonal
    img[0, 5] = np.nan                                                 # a masked cell
    strided = img[::3, ::3]
    assert np.nansum(strided) == 0.0                                   # every-third sampling: gone
    pooled = max_pool_stride(img[::3], 3)                              # the sampled rows, columns pooled
    assert pooled.shape == strided.shape
    # every sampled row that holds a stripe cell keeps it: row 3's at column 2, row 6's at column 5
    assert pooled.tolist() == [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    only_nan = np.full((3, 3), np.nan, dtype=np.float32)
    assert np.isnan(max_pool_stride(only_nan, 3)).all()              # a fully masked block stays masked


def reference_scores(a: np.ndarray, pieces: Pieces) -> dict[str, float]:
    """The four scores of one head (T, T), written out with loops (not core.head_scores)."""
    words = [i for i, s in enumerate(pieces.special) if not s]
    prev = [a[i, i - 1] for i in words if i - 1 in words]
    ent = [-sum(w * np.log2(w) for w in a[i] if w > 0) for i in words]
    return {"previous": float(np.mean(prev)), "cls": float(np.mean([a[i, 0] for i in words])),
            "sep": float(np.mean([a[i, len(a) - 1] for i in words])), "entropy": float(np.mean(ent))}


def test_every_thumbnail_prints_its_scores_under_it(qtbot):
    from gui.pretrained_view import score_lines

    panel = ready_panel(qtbot, Recorder())
    view = panel.gallery_view
    view.grab()
    weights = panel.gallery.attn_weights.numpy().astype(np.float64)
    texts = {}
    for layer, head, text, rect in view.drawn_texts:
        texts.setdefault((layer, head), []).append((text, rect))
    assert len(texts) == 72
    for (layer, head), drawn in texts.items():
        thumb = view.thumbnail_rect(layer, head)
        ref = reference_scores(weights[layer, head], PIECES)
        assert [t for t, _r in drawn] in ([*score_lines(ref)], [*score_lines(ref, short=True)])
        for _t, rect in drawn:                                          # under its own thumbnail
            assert rect.top() >= thumb.bottom() and abs(rect.center().x() - thumb.center().x()) < 1
            assert rect.bottom() <= view.height()
    # the numbers are the reference's, to the printed two decimals
    text = dict(texts)[(2, 4)][0][0]
    assert f"{reference_scores(weights[2, 4], PIECES)['previous']:.2f}"[1:] in text


def patterned_gallery() -> Gallery:
    """Uniform heads, but three previous-token heads of strength 1.0, 0.8 and 0.5."""
    t = len(PIECES.ids)
    w = torch.full((6, 12, t, t), 1.0 / t, dtype=torch.float64)
    for (layer, head), strength in {(0, 2): 1.0, (3, 5): 0.8, (5, 11): 0.5}.items():
        a = torch.full((t, t), (1 - strength) / (t - 1), dtype=torch.float64)
        a[torch.arange(1, t), torch.arange(0, t - 1)] = strength
        a[0] = 1.0 / t
        w[layer, head] = a
    return Gallery(PIECES, w)


def test_filter_and_sort_choose_the_heads_and_their_order(qtbot):
    panel = ready_panel(qtbot, Recorder(lambda text: patterned_gallery()))
    view = panel.gallery_view
    natural = view.thumbnail_rect(0, 0).width()
    assert view.shown_heads()[:3] == [(0, 0), (0, 1), (0, 2)] and len(view.shown_heads()) == 72
    panel.filter_box.setCurrentIndex(1)                                # previous-token heads
    assert view.shown_heads() == [(0, 2), (3, 5), (5, 11)]
    assert view.thumbnail_rect(0, 0).isEmpty()                         # a filtered-out head is not drawn
    assert view.thumbnail_rect(3, 5).width() > 2 * natural             # three heads: much larger thumbnails
    view.grab()
    names = [t for _l, _h, t, _r in view.drawn_texts if t.startswith("L")]
    assert names == ["L0 H2", "L3 H5", "L5 H11"]
    panel.filter_box.setCurrentIndex(0)
    panel.sort_box.setCurrentIndex(1)                                  # previous-token share, highest first
    assert view.shown_heads()[:3] == [(0, 2), (3, 5), (5, 11)]
    panel.sort_box.setCurrentIndex(4)                                  # entropy, lowest first
    assert view.shown_heads()[0] == (0, 2) and view.shown_heads()[-1] != (0, 2)
    # a click still opens the head drawn there
    centre = view.thumbnail_rect(0, 2).center().toPoint()
    with qtbot.waitSignal(panel.head_clicked, timeout=2000) as sig:
        qtbot.mouseClick(view, QtCore.Qt.MouseButton.LeftButton, pos=centre)
    assert sig.args == [0, 2]


def test_all_12_heads_on_the_token_lines_draw_every_head_with_one_query(qtbot):
    panel = ready_panel(qtbot, Recorder())
    panel.show_view("lines")
    panel.select(1, None)
    grid = panel.lines_grid
    assert grid.isVisible() and not panel.lines_view.isVisible()
    assert "all 12 heads" in grid.title.text()
    weights = panel.gallery.attn_weights.numpy()
    query = grid.query
    assert PIECES.pieces[query] == "him"
    for h, view in enumerate(grid.views):
        assert view.title.startswith(f"head {h}")
        assert [w for _k, w, _a in view.lines()] == pytest.approx(list(weights[1, h, query] * MAX_LINE_PX))
    # a piece clicked in one head moves every head's lines
    view = grid.views[7]
    _top, _row, left_x, _r = view._rows()
    qtbot.mouseClick(view, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(int(left_x) - 6, int(view.row_y(2))))
    assert all(v.query == 2 for v in grid.views) and panel.lines_view.query == 2
    panel.select(1, 4)                                                  # one head: the large view
    assert panel.lines_view.isVisible() and not grid.isVisible()
    assert panel.lines_view.title.startswith("layer 1, head 4")


def test_hovering_a_thumbnail_cell_names_its_pieces_and_weight(qtbot):
    panel = ready_panel(qtbot, Recorder())
    view = panel.gallery_view
    rect = view.thumbnail_rect(2, 4)
    t = len(PIECES.ids)
    pos = QtCore.QPointF(rect.left() + (1 + 0.5) * rect.width() / t, rect.top() + (4 + 0.5) * rect.height() / t)
    assert view.cell_at(pos) == (4, 1)                                   # "him" looking at "the"
    qtbot.mouseMove(view, pos.toPoint())
    view.mouseMoveEvent(QtGui.QMouseEvent(QtCore.QEvent.Type.MouseMove, pos, pos, QtCore.Qt.MouseButton.NoButton,
                                          QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier))
    w = float(panel.gallery.attn_weights[2, 4, 4, 1])
    assert f"him → the: weight {w:.4f}" in view.toolTip() and view.toolTip().startswith("layer 2, head 4")
    panel.hide_special.setChecked(True)                                  # renormalised thumbnails, same scores
    assert "[CLS]/[SEP] included" in view.legend_text()
