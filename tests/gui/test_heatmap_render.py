"""The heatmaps' own float → QImage path paints exactly what pyqtgraph's ImageItem paints."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtGui

from gui.heatmap import _Image, colormap


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
        assert ours.qimage.format() == QtGui.QImage.Format.Format_ARGB32   # the short path ran
        np.testing.assert_array_equal(_pixels(ours.qimage), _pixels(theirs.qimage), err_msg=f"{kind} {levels} {data}")
        for transform in _TRANSFORMS:          # and QPainter puts them on screen the same way
            assert _drawn(ours, transform) == _drawn(theirs, transform), (kind, levels, transform)


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
