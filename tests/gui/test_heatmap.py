"""gui/heatmap.py: cell colours equal pyqtgraph's (each drawn pixel a cell under it), cell texts,
downsampled maps with exact hover, axis labels."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui
import pytest

from gui.heatmap import _Image, colormap, MatrixPanel, MAX_DISPLAY
from gui.matrices import MapData, MatrixData


def _pixels(qimage: QtGui.QImage) -> np.ndarray:
    img = qimage.convertToFormat(QtGui.QImage.Format.Format_ARGB32_Premultiplied)
    arr = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return arr[:, :img.width() * 4].copy()


# map scale and offset on screen: 12 heads of 64 tokens are ~1 pixel a cell, at fractional offsets
_TRANSFORMS = [(5.3, 7.7, 70 / 64, 108 / 64), (0.25, 0.5, 0.94, 1.68), (3.0, 1.0, 9.5, 7.25), (0.6, 0.1, 31.3, 17.9)]


def _drawn(item, transform) -> QtGui.QImage:
    dx, dy, sx, sy = transform
    target = QtGui.QImage(320, 240, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
    target.fill(QtGui.QColor(255, 255, 255))
    painter = QtGui.QPainter(target)
    painter.translate(dx, dy)
    painter.scale(sx, sy)
    item.paint(painter)
    painter.end()
    return target


def _drawn_pixels(item, transform) -> np.ndarray:
    return _pixels(_drawn(item, transform)).reshape(240, 320, 4)


def _misplaced(drawn: np.ndarray, qimage: QtGui.QImage, transform) -> np.ndarray:
    """(y, x) of the drawn pixels whose colour is none of the cells under that pixel, the pixel
    widened by half a pixel each way (nearest-neighbour scaling may put a cell edge there), nor
    the white background where that area reaches past the image or over a transparent cell."""
    dx, dy, sx, sy = transform
    cells = _pixels(qimage).reshape(qimage.height(), qimage.width(), 4)
    rows, cols = cells.shape[:2]
    transparent = cells[..., 3] == 0
    colours = np.ascontiguousarray(cells).view(np.uint32)[..., 0]        # (rows, cols), one word a pixel
    shown = np.ascontiguousarray(drawn).view(np.uint32)[..., 0]          # (h, w)
    white = np.array([255, 255, 255, 255], np.uint8).view(np.uint32)[0]
    is_white = shown == white
    h, w = shown.shape

    def spans(n_px, offset, scale, n):            # the cell range each pixel's widened area covers
        px = np.arange(n_px, dtype=np.float64)
        lo = np.floor((px - 0.5 - offset) / scale).astype(int)
        hi = np.floor((px + 1.5 - offset) / scale - 1e-9).astype(int)
        return np.clip(lo, 0, n - 1), np.clip(hi, 0, n - 1), (lo < 0) | (hi >= n), (hi < 0) | (lo >= n)

    c_lo, c_hi, c_out, c_none = spans(w, dx, sx, cols)
    r_lo, r_hi, r_out, r_none = spans(h, dy, sy, rows)
    ok = is_white & (c_out[None, :] | r_out[:, None])
    ok |= c_none[None, :] | r_none[:, None]
    for i in range(int((r_hi - r_lo).max()) + 1):
        r = np.minimum(r_lo + i, r_hi)[:, None]
        for j in range(int((c_hi - c_lo).max()) + 1):
            c = np.minimum(c_lo + j, c_hi)[None, :]
            ok |= np.where(transparent[r, c], is_white, shown == colours[r, c])
    return np.argwhere(~ok)


def _shown_panel(qtbot, size: tuple[int, int], data: MatrixData | None = None) -> MatrixPanel:
    """A MatrixPanel of this size on screen, drawing ``data`` when given."""
    panel = MatrixPanel()
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    qtbot.waitExposed(panel)
    if data is not None:
        panel.set_matrix(data)
    return panel


def _images(rng) -> list[np.ndarray]:
    a = rng.normal(0.0, 1.5, (7, 9)).astype(np.float32)
    masked = a.copy()
    masked[np.triu_indices(7, 1, 9)] = np.nan
    probs = rng.random((64, 64)).astype(np.float32)
    probs[np.triu_indices(64, 1)] = np.nan
    edges = np.array([[0.0, 1.0, 0.5, -1e30, 1e30, np.inf, -np.inf, np.nan, 255.0 / 256, 1.0 / 256]], np.float32)
    return [a, masked, probs, edges, a.astype(np.float64), np.full((3, 3), np.nan, np.float32),
            masked.T, probs[::3, 1::2]]        # column-major (a transposed weight) and strided views


@pytest.mark.parametrize("kind", ["prob", "signed", "binary"])
@pytest.mark.parametrize("levels", [(0.0, 1.0), (-2.5, 2.5), (0.3, 0.3), (-1e-6, 1e-6)])
def test_same_pixels_as_pyqtgraph(qapp, kind, levels):
    rng = np.random.default_rng(5)
    cmap = colormap(kind)
    for data in _images(rng):
        ours, theirs = _Image(axisOrder="row-major"), pg.ImageItem(axisOrder="row-major")
        for item in (ours, theirs):
            item.setColorMap(cmap)
            item.setImage(data, autoLevels=False, levels=levels)
            item.render()
        assert ours.qimage.format() == QtGui.QImage.Format.Format_ARGB32_Premultiplied   # the short path ran
        np.testing.assert_array_equal(_pixels(ours.qimage), _pixels(theirs.qimage), err_msg=f"{kind} {levels} {data}")
        for transform in _TRANSFORMS:
            # QPainter scales a premultiplied image through its fast path (~12× faster than
            # pyqtgraph's RGBA8888 at 64 × 64 → 100 px), which may put a cell edge one pixel
            # over; pyqtgraph's may too. Either way every pixel shows a cell under it.
            for item in (ours, theirs):
                wrong = _misplaced(_drawn_pixels(item, transform), item.qimage, transform)
                assert not len(wrong), (kind, levels, transform, type(item).__name__, wrong[:5])


def test_translucent_colour_maps_use_pyqtgraph(qapp):
    cmap = pg.ColorMap(pos=[0.0, 1.0], color=[(0, 0, 0, 0), (255, 0, 0, 128)])
    ours, theirs = _Image(axisOrder="row-major"), pg.ImageItem(axisOrder="row-major")
    data = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    for item in (ours, theirs):
        item.setColorMap(cmap)
        item.setImage(data, autoLevels=False, levels=(0.0, 1.0))
        item.render()
    np.testing.assert_array_equal(_pixels(ours.qimage), _pixels(theirs.qimage))


def test_a_failing_short_path_falls_back_to_pyqtgraph(qapp, monkeypatch):
    """An exception out of paint() would take the app down: the render never raises."""
    def broken(self):
        raise ValueError("boom")
    monkeypatch.setattr(_Image, "_render_argb", broken)
    item = _Image(axisOrder="row-major")
    item.setColorMap(colormap("signed"))
    item.setImage(np.arange(6, dtype=np.float32).reshape(2, 3), autoLevels=False, levels=(-5.0, 5.0))
    item.render()
    assert item.qimage is not None and item.qimage.width() == 3


@pytest.mark.parametrize("px", [7, 10, 14])
def test_cell_texts_look_like_one_text_item_per_cell(qtbot, px):
    """The one item that prints all cell values draws the same pixels as pyqtgraph TextItems."""
    from PySide6 import QtWidgets
    from gui.heatmap import _CellTexts
    w = pg.GraphicsLayoutWidget(show=False)
    w.setBackground("w")
    w.resize(420, 260)
    plot = w.addPlot()
    plot.invertY(True)
    plot.hideAxis("left")
    plot.hideAxis("bottom")
    plot.setRange(xRange=(0, 3), yRange=(0, 2), padding=0)
    plot.disableAutoRange()
    texts = ["0.1234", "−∞", "0", "1.0e-07", "-0.5000", "1"]
    colors = [(0, 0, 0), (70, 70, 70), (255, 255, 255), (0, 0, 0), (255, 255, 255), (70, 70, 70)]
    font = QtGui.QFont()
    font.setPixelSize(px)
    items = []
    for n, (text, color) in enumerate(zip(texts, colors)):
        item = pg.TextItem(anchor=(0.5, 0.5))
        item.setText(text, color=color)
        item.setFont(font)
        item.setPos(n % 3 + 0.5, n // 3 + 0.5)
        plot.addItem(item)
        items.append(item)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    QtWidgets.QApplication.processEvents()
    with_text_items = w.grab().toImage()
    for item in items:
        plot.removeItem(item)
    cells = _CellTexts()
    cells.set_shape(2, 3)
    cells.set_pixel_size(px)
    cells.set_cells([(t, QtGui.QColor(*c)) for t, c in zip(texts, colors)])
    plot.addItem(cells)
    QtWidgets.QApplication.processEvents()
    assert cells.texts == texts
    assert w.grab().toImage() == with_text_items


def test_downsampled_display_reports_exact_values_on_hover(qtbot):
    from gui import heatmap
    from gui.heatmap import MatrixPanel
    from gui.matrices import MapData, MatrixData, format_value
    n = heatmap.MAX_DISPLAY * 2 + 37                          # drawn with a stride of 3 or more
    rng = np.random.default_rng(5)
    values = rng.standard_normal((n, n)).astype(np.float32)
    labels = tuple(f"t{i}" for i in range(n))
    data = MatrixData(key=("multihead", "attn_scores"), title="scores", symbol="ω", meaning="a score",
                      maps=[MapData(values, None, "head 0", (0,), 0)], row_labels=labels, col_labels=labels,
                      row_axis="query", col_axis="key", kind="signed", levels=(-5.0, 5.0))
    panel = _shown_panel(qtbot, (700, 700), data)
    qtbot.wait(50)
    shown = panel.maps[0].image.image
    k = panel.maps[0].stride                                  # about one sample per screen pixel
    assert k >= 3 and shown.shape == (-(-n // k), -(-n // k)) and max(shown.shape) <= heatmap.MAX_DISPLAY
    np.testing.assert_array_equal(shown, values[::k, ::k])
    hovered = []
    panel.hovered.connect(hovered.append)
    vb = panel.maps[0].plot.vb
    for row, col in ((1, 2), (n - 1, n - 2), (500, 1000)):    # cells between the drawn samples
        scene = vb.mapViewToScene(QtCore.QPointF(col + 0.5, row + 0.5))
        assert panel.cell_at(scene) == (0, row, col)
        panel._on_move(scene)
        assert f"ω[t{row}, t{col}] = {format_value(values[row, col])}" in hovered[-1]
        # and says how the map is drawn (a learner reading a pale map knows it is sampled)
        assert hovered[-1].endswith(f"(drawn at 1/{k}: every {k}th row and column)")


@pytest.mark.parametrize("tokens,map_px", [(1024, 15.0), (1024, 120.0), (64, 40.0), (6, 300.0)])
def test_axis_labels_of_a_downsampled_map_do_not_overlap(tokens, map_px):
    """Regression: cells were taken as at least half a pixel wide, so a 1024-row map 15 px tall
    got 24 row labels on top of each other (a black smear beside each of 12 heads)."""
    from PySide6 import QtGui, QtWidgets
    from gui.heatmap import _fitted_ticks
    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    fm = QtGui.QFontMetrics(QtGui.QFont())
    labels = tuple(f"t{i}" for i in range(tokens))
    cell = map_px / tokens
    rows = _fitted_ticks(labels, cell, fm, None)                                   # vertical axis
    gaps = [(b - a) * cell for (a, _), (b, _) in zip(rows, rows[1:])]
    assert rows and all(g >= fm.height() for g in gaps), gaps
    widest = max(fm.horizontalAdvance(t) for t in labels)
    cols = _fitted_ticks(labels, cell, fm, widest)                                 # horizontal axis
    for (a, text), (b, _) in zip(cols, cols[1:]):
        assert fm.horizontalAdvance(text) <= (b - a) * cell, (text, (b - a) * cell)


def test_big_matrix_is_downsampled_but_hover_is_exact(qtbot):
    n = 1500
    values = np.arange(n * n, dtype=np.float32).reshape(n, n) / (n * n)
    labels = tuple(f"t{i}" for i in range(n))
    data = MatrixData(key=("trainable", "attn_weights"), title="A", symbol="A", meaning="weights",
                      maps=[MapData(values, None)], row_labels=labels, col_labels=labels,
                      row_axis="query", col_axis="key", kind="prob", levels=(0.0, 1.0),
                      template="A[{r}, {c}] = {v}")
    panel = MatrixPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 600)
    panel.show()
    panel.set_matrix(data)
    shown = panel.maps[0].image.image
    assert max(shown.shape) <= MAX_DISPLAY
    assert panel.maps[0].texts == []                     # no per-cell text on big matrices
    row, col = 1234, 777
    hit = panel.cell_at(panel.maps[0].plot.vb.mapViewToScene(QtCore.QPointF(col + 0.5, row + 0.5)))
    assert hit == (0, row, col)
    assert panel.describe(*hit).startswith(f"A[t{row}, t{col}] = {values[row, col]:.4f}")


def _scores(values: np.ndarray, masked=None, levels=(-3.0, 3.0)) -> MatrixData:
    labels = tuple(f"t{i}" for i in range(values.shape[-1]))
    return MatrixData(key=("multihead", "attn_scores"), title="scores", symbol="ω", meaning="a score",
                      maps=[MapData(v, masked, f"head {h}", (h,), h) for h, v in enumerate(values)],
                      row_labels=labels, col_labels=labels, row_axis="query", col_axis="key",
                      kind="signed", levels=levels)


def test_the_same_arrays_again_are_not_redrawn_and_new_values_are(qtbot, monkeypatch):
    """The full trace after the visible stage's holds the very same arrays: the panel keeps its
    images. New numbers in the same layout (a parameter change) replace the images and texts."""
    from gui import heatmap
    from gui.heatmap import same_drawing
    rng = np.random.default_rng(3)
    first = rng.standard_normal((2, 5, 5)).astype(np.float32)
    mask = ~np.tri(5, dtype=bool)
    panel = _shown_panel(qtbot, (700, 400), _scores(first, mask))
    calls = []
    original = heatmap._Map.set_data
    monkeypatch.setattr(heatmap._Map, "set_data", lambda self, *a: (calls.append(a), original(self, *a))[1])
    again = _scores(first, mask.copy())              # same arrays; an equal mask built anew
    assert same_drawing(panel.data, again)
    panel.set_matrix(again)
    assert calls == [] and panel.data is again
    copy = _scores(first.copy(), mask)               # equal numbers in other memory: drawn again
    assert not same_drawing(panel.data, copy)
    second = rng.standard_normal((2, 5, 5)).astype(np.float32)
    panel.set_matrix(_scores(second, mask))
    assert len(calls) == 2
    qtbot.wait(20)
    for h, m in enumerate(panel.maps):
        shown = m.image.image
        np.testing.assert_array_equal(np.isnan(shown), mask)
        np.testing.assert_array_equal(shown[~mask], second[h][~mask])
        assert m.texts[:2] == [f"{second[h][0, 0]:.4f}", "0"]          # row 0: its value, then masked
    assert not same_drawing(panel.data, _scores(second, mask, levels=(-4.0, 4.0)))


def test_a_released_panel_draws_the_same_data_again(qtbot):
    values = np.random.default_rng(4).standard_normal((1, 4, 4)).astype(np.float32)
    data = _scores(values)
    panel = _shown_panel(qtbot, (500, 400), data)
    panel.release_images()                           # hidden for reuse: its images dropped
    assert panel.maps[0].image.image is None
    panel.set_matrix(data)
    np.testing.assert_array_equal(panel.maps[0].image.image, values[0])


def test_the_image_covers_its_cells_after_a_resize_changes_the_stride(qtbot):
    """Regression: the image was scaled to its cells only when the cells changed, so a resize that
    resampled it (another stride) drew it over and past its panel."""
    n = 1500
    values = np.random.default_rng(6).random((n, n)).astype(np.float32)
    labels = tuple(f"t{i}" for i in range(n))
    data = MatrixData(key=("trainable", "attn_weights"), title="A", symbol="A", meaning="weights",
                      maps=[MapData(values, None)], row_labels=labels, col_labels=labels,
                      row_axis="query", col_axis="key", kind="prob", levels=(0.0, 1.0))
    panel = _shown_panel(qtbot, (1300, 1300), data)
    m = panel.maps[0]
    before = m.stride
    panel.setMinimumSize(100, 100)              # (a step view lets it shrink: its area scrolls)
    panel.resize(300, 300)
    qtbot.waitUntil(lambda: m.stride != before)
    covered = m.image.mapRectToParent(m.image.boundingRect())
    assert (covered.width(), covered.height()) == pytest.approx((n, n)), (before, m.stride, covered)


def test_the_hatching_is_drawn_only_under_masked_or_undefined_cells(qtbot):
    values = np.random.default_rng(8).standard_normal((1, 4, 4)).astype(np.float32)
    panel = _shown_panel(qtbot, (500, 400), _scores(values))
    assert not panel.maps[0].hatch.isVisible()                      # every cell opaque: nothing shows through
    panel.set_matrix(_scores(values, ~np.tri(4, dtype=bool)))
    assert panel.maps[0].hatch.isVisible()                          # the masked triangle
    undefined = values.copy()
    undefined[0, 1, 2] = np.nan
    panel.set_matrix(_scores(undefined))
    assert panel.maps[0].hatch.isVisible()


def _worker_prepared(step_id: str, **config):
    """A custom trace computed as the trace worker computes it for ``step_id`` (panels prepared)."""
    from core.config import AttentionConfig
    from gui.steps import load_steps
    from gui.view_model import step_stages
    from gui.worker import Request, compute
    step = next(s for s in load_steps() if s.id == step_id)
    params = {**AttentionConfig(embeddings="random", text="a b c d e f g", d_in=8, d_out=8,
                                num_heads=4, seed=3).to_dict(), **config}
    out = compute(Request(1, "custom", params, stages=step_stages(step), panels=tuple(step.panels)))
    assert out.error is None, out.error
    return step, out.traces["custom"]


def test_the_worker_renders_the_visible_maps_and_the_window_draws_those_words(qtbot):
    """The trace worker looks the visible maps up in their colour tables ahead of the window
    (the same words the window would make), and the window's images are made of them."""
    from gui import heatmap
    from gui.matrices import resolve_panel
    step, trace = _worker_prepared("multihead.weights")
    data = resolve_panel(step.panels[0], trace)
    table = heatmap.colour_table(data.kind)
    for m in data.maps:
        ready = m.found(heatmap.rendered_key(data))
        assert ready is not None and not m.display(1).flags.writeable
        np.testing.assert_array_equal(ready, heatmap.argb_image(m._display(1), *map(float, data.levels), table))
    made = []
    from gui import heatmap_colour         # where the image item looks its words up
    real = heatmap_colour.argb_image
    heatmap_colour.argb_image = lambda *a: made.append(1) or real(*a)
    try:
        panel = _shown_panel(qtbot, (700, 500), data)
        qtbot.waitUntil(lambda: all(m.image.qimage is not None for m in panel.maps))
    finally:
        heatmap_colour.argb_image = real
    assert made == []                                      # nothing looked up again
    for m, shown in zip(data.maps, panel.maps):
        fresh = _Image(axisOrder="row-major")
        fresh.setColorMap(colormap(data.kind))
        fresh.setImage(m.display(1), autoLevels=False, levels=data.levels)
        fresh.render()
        np.testing.assert_array_equal(_pixels(shown.image.qimage), _pixels(fresh.qimage))


def test_words_made_for_other_levels_are_not_used(qapp):
    """Words rendered ahead for other levels (or another colour table) are ignored: the image
    is looked up again with what it has now."""
    from gui import heatmap
    img = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    table = heatmap.colour_table("signed")
    for levels, kind in (((-2.0, 2.0), "signed"), ((-1.0, 1.0), "prob")):
        item = _Image(axisOrder="row-major")
        item.setColorMap(colormap("signed"))
        item.setImage(img, autoLevels=False, levels=(-1.0, 1.0))
        item.set_rendered(heatmap.argb_image(img, *levels, heatmap.colour_table(kind)), levels, heatmap.colour_table(kind))
        item.render()
        want = heatmap.argb_image(img, -1.0, 1.0, table)
        np.testing.assert_array_equal(_pixels(item.qimage).view(np.uint32).reshape(3, 4), want)


def test_axes_drawn_without_their_picture_give_the_same_pixels(qtbot, monkeypatch):
    """Axes that print no values (thumbnails: a line and a dot per tick) are drawn directly
    instead of by replaying pyqtgraph's QPicture: the same pixels."""
    from gui import heatmap
    rng = np.random.default_rng(2)
    maps = [MapData(rng.random((64, 64)).astype(np.float32), None, f"head {h}", (h,), h) for h in range(12)]
    data = MatrixData(("multihead", "attn_weights"), "A", "A", "weights", maps,
                      tuple(f"t{i}" for i in range(64)), tuple(f"t{i}" for i in range(64)),
                      "query", "key", "prob", (0.0, 1.0))
    panel = _shown_panel(qtbot, (640, 520), data)
    qtbot.waitUntil(lambda: all(m.image.qimage is not None for m in panel.maps))
    axes = [m.plot.getAxis(a) for m in panel.maps for a in ("left", "top")]
    direct = panel.grab().toImage()
    assert all(ax._lines is not None and len(ax._lines[0][1]) for ax in axes)    # the short path drew them
    monkeypatch.setattr(heatmap._Axis, "_note_lines", lambda self, *a: None)
    for ax in axes:
        ax.picture = None                   # made again, now replayed as pyqtgraph does
        ax._lines = None
        ax.update()
    replayed = panel.grab().toImage()
    assert all(ax._lines is None and ax.picture is not None for ax in axes)
    assert _pixels(direct).tobytes() == _pixels(replayed).tobytes()


def test_a_downsampled_weight_map_keeps_a_one_cell_stripe_by_taking_each_blocks_max(qtbot):
    """Attention weights drawn with fewer samples than cells: each sampled row's cells are the
    largest weight of their stride columns (gui.pooling), so a previous-token stripe (one cell a
    row) is drawn in every sampled row that holds one, at weight 1; every-k-th sampling of the
    columns too would keep none of it."""
    n = MAX_DISPLAY * 2 + 37
    values = np.zeros((n, n), dtype=np.float32)
    values[np.arange(1, n), np.arange(0, n - 1)] = 1.0                 # just below the diagonal
    labels = tuple(f"t{i}" for i in range(n))
    data = MatrixData(key=("trainable", "attn_weights"), title="A", symbol="A", meaning="weights",
                      maps=[MapData(values, None)], row_labels=labels, col_labels=labels,
                      row_axis="query", col_axis="key", kind="prob", levels=(0.0, 1.0))
    panel = _shown_panel(qtbot, (700, 700), data)
    qtbot.wait(50)
    k = panel.maps[0].stride
    shown = panel.maps[0].image.image
    assert k >= 3 and shown.shape == (-(-n // k), -(-n // k))
    assert np.nansum(values[::k, ::k]) == 0.0                          # sampling would lose the stripe
    assert shown[0].max() == 0.0                                       # row 0 has no previous token
    assert (shown[1:].max(axis=1) == 1.0).all()                        # every other drawn row shows it
    for r in range(1, shown.shape[0]):                                 # at the block holding it
        assert shown[r, (r * k - 1) // k] == 1.0
    assert panel.downsampling(0) == f"drawn at 1/{k}: every {k}th row, each pixel the largest weight of its {k} columns"


def test_thinned_upright_column_labels_are_whole_and_wide_maps_do_not_rotate_them(qapp):
    """A 768-column map's labels are thinned anyway: drawn upright and whole ("out64"), not
    elided to "out…" (what the 1366 × 768 screenshots of 2.1 showed); a map of ≤ 32 columns keeps
    its labels one a column (rotated when they are wider than a cell)."""
    from PySide6 import QtGui
    from gui.heatmap import _fitted_ticks, rotates_columns
    from gui.matrices import MapData, MatrixData
    fm = QtGui.QFontMetrics(QtGui.QFont())
    labels = tuple(f"out{j}" for j in range(768))
    ticks = _fitted_ticks(labels, 200 / 768, fm, max(fm.horizontalAdvance(t) for t in labels))
    assert len(ticks) >= 3 and all(text == labels[int(x)] for x, text in ticks)      # none elided

    def data(cols: int) -> MatrixData:
        return MatrixData(key=("trainable", "W_query"), title="W", symbol="W", meaning="",
                          maps=[MapData(np.zeros((4, cols), np.float32), None)], row_labels=("a", "b", "c", "d"),
                          col_labels=tuple(f"out{j}" for j in range(cols)), row_axis="in", col_axis="out",
                          kind="signed", levels=(-1.0, 1.0))
    assert not rotates_columns(data(768)) and not rotates_columns(data(768), compact=True)
    assert rotates_columns(data(12)) and rotates_columns(data(12), compact=True)


def test_a_panel_without_row_labels_or_colour_bar_needs_that_much_less_and_compact_less_again(qapp):
    """The sizes the step view arranges panels by (heatmap.panel_min_size): a panel that leaves its
    row labels to the panel on its left is narrower by their width, one that leaves its colour bar
    to the panel on its right by the bar's, and a compact one (smaller labels, 13 px cells) is
    smaller than the normal one both ways, its cells never below a label's height."""
    from PySide6 import QtGui
    from gui.heatmap import BAR_WIDTH, label_cell, label_font, min_cell, panel_min_size, row_label_width
    from gui.matrices import MapData, MatrixData
    toks = tuple("The old dog chased the quick fox which bit him again today".split())
    d = MatrixData(key=("causal", "attn_weights"), title="A · attn_weights", symbol="A", meaning="",
                   maps=[MapData(np.zeros((12, 12), np.float32), None)], row_labels=toks, col_labels=toks,
                   row_axis="query", col_axis="key", kind="prob", levels=(0.0, 1.0))
    w, h = panel_min_size(d)
    assert panel_min_size(d, barless=True) == (w - BAR_WIDTH, h)
    rowless = panel_min_size(d, rowless=True)
    assert rowless[1] == h and abs((w - rowless[0]) - (row_label_width(d) - 2)) <= 2
    cw, ch = panel_min_size(d, compact=True)
    assert cw < w and ch < h
    assert min_cell(d, compact=True)[0] == label_cell(compact=True) == QtGui.QFontMetrics(label_font(True)).height() + 1
    assert label_cell(compact=True) < label_cell()


def test_only_thumbnails_of_heads_say_a_click_opens_one():
    """A grid of many heads opens a head on a click (the title says so); a grid of other maps
    (RoPE's positions: no head) only inspects the cell, and its title promises nothing."""
    from gui.heatmap_sizing import panel_title
    values = np.zeros((6, 3, 3))
    heads = _scores(values)
    assert panel_title(heads) == "scores   (click a head to open it)"
    positions = dataclasses.replace(heads, maps=[dataclasses.replace(m, head=None) for m in heads.maps])
    assert panel_title(positions) == "scores"
    assert panel_title(dataclasses.replace(heads, maps=heads.maps[:2])) == "scores"    # two heads: drawn large


def test_the_worker_pools_every_heads_weights_at_the_stride_the_window_drew_it(qtbot, monkeypatch):
    """Weights drawn smaller than a pixel a cell are max-pooled (gui.pooling) on the trace worker
    at the stride the window last drew each map at. In a grid of heads the maps beside the row
    labels are narrower than the others, so their stride differs: kept per map, the next trace's
    maps are all pooled ahead and the window's thread pools none (a 1024-token step: ~6 ms)."""
    from gui import pooling
    from gui.matrices import resolve_panel
    text = " ".join(f"w{i}" for i in range(1024))
    step, first = _worker_prepared("multihead.weights", text=text, num_heads=12, d_out=12)
    panel = _shown_panel(qtbot, (918, 652), resolve_panel(step.panels[0], first))   # the benchmark's
    qtbot.waitUntil(lambda: all(m.image.qimage is not None for m in panel.maps))
    strides = [m.stride for m in panel.maps]
    assert min(strides) > 1 and len(set(strides)) > 1, strides       # (5 and 6 here)
    _step, second = _worker_prepared("multihead.weights", text=text, num_heads=12, d_out=12, seed=4)  # pooled ahead
    pooled = []
    real = pooling.max_pool_stride
    monkeypatch.setattr(pooling, "max_pool_stride", lambda *a: pooled.append(a[1]) or real(*a))
    panel.set_matrix(resolve_panel(step.panels[0], second))
    qtbot.waitUntil(lambda: all(m.image.qimage is not None for m in panel.maps))
    assert [m.stride for m in panel.maps] == strides and pooled == [], (strides, pooled)


def test_maps_that_print_no_values_are_not_scanned_for_their_widest_value():
    """The widest printed value sizes a cell's text; a map too big to print values (or thumbnails)
    is not read for it (12 heads × 1024² took ~35 ms of the window's thread each change)."""
    from gui.heatmap_sizing import value_chars
    big = _scores(np.full((2, 40, 40), -123456.0))
    assert value_chars(big) == 6
    small = _scores(np.full((2, 4, 4), -123456.0))
    assert value_chars(small) == len("-123456.0000")


@pytest.mark.parametrize("shape, stride", [((205, 1024), 5), ((171, 1024), 6), ((7, 10), 3), ((3, 3), 2),
                                           ((50, 97), 7), ((4, 12), 12)])
def test_pooling_by_stride_is_the_largest_finite_value_of_each_column_block(shape, stride):
    """gui.pooling.max_pool_stride against np.fmax.reduceat over the column blocks (the last one
    short when the stride does not divide the columns; NaN = masked, ignored unless the whole
    block is masked). The maximum is exact, so the two are equal."""
    from gui.pooling import max_pool_stride
    rng = np.random.default_rng(sum(shape) + stride)
    rows = rng.random(shape).astype(np.float32)
    rows[rng.random(shape) < 0.3] = np.nan
    rows[:, :stride] = np.nan                               # a wholly masked block stays NaN
    with np.errstate(invalid="ignore"):
        want = np.fmax.reduceat(rows, np.arange(0, shape[1], stride), axis=1)
    np.testing.assert_array_equal(max_pool_stride(rows, stride), want)
