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
