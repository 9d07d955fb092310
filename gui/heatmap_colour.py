"""Colours of a heatmap: the colour maps per kind of matrix, ARGB words looked up ahead on the
trace worker (:func:`prerender`) and the image item that paints them (:class:`_Image`)."""
from __future__ import annotations

import functools

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui
from pyqtgraph import functions as fn

from gui.heatmap_sizing import MIN_DISPLAY
from gui.matrices import MatrixData

HATCH = QtGui.QColor(150, 150, 150)


def colormap(kind: str) -> pg.ColorMap:
    """diverging (signed, symmetric levels), sequential (weights in [0, 1]) or binary (masks)."""
    if kind in ("signed", "diff"):
        return pg.colormap.get("CET-D1")
    if kind == "binary":
        return pg.ColorMap(pos=[0.0, 1.0], color=[(242, 242, 242), (49, 104, 142)])
    if kind == "ids":                      # numbers that are names (token ids): no colour scale
        return pg.ColorMap(pos=[0.0, 1.0], color=[(246, 246, 240), (246, 246, 240)])
    return pg.colormap.get("viridis")      # sequential: weights, all-positive values ("seq")



def row_scaled(img: np.ndarray) -> np.ndarray:
    """Each row divided by its largest (finite, unmasked) value: auto-contrast for weights, so a
    long causal map shows each row's structure instead of one flat triangle."""
    with np.errstate(invalid="ignore", divide="ignore"):
        top = np.nanmax(np.where(np.isfinite(img), img, np.nan), axis=1, keepdims=True) if img.size else img
        out = img / np.where(top > 0, top, 1.0)
    return out.astype(img.dtype, copy=False)


def argb_words(lut) -> np.ndarray | None:
    """A pyqtgraph lookup table (uint8, n × 3 or opaque n × 4, n ≤ 256) as ARGB32 words; None for
    anything else (translucent colours: pyqtgraph's own render draws those)."""
    if (isinstance(lut, np.ndarray) and lut.dtype == np.uint8 and lut.ndim == 2
            and lut.shape[1] in (3, 4) and 0 < lut.shape[0] <= 256
            and (lut.shape[1] == 3 or bool((lut[:, 3] == 255).all()))):
        rgb = lut[:, :3].astype(np.uint32)
        return np.uint32(0xFF000000) | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    return None


@functools.lru_cache(maxsize=8)
def colour_table(kind: str) -> np.ndarray | None:
    """The ARGB32 words an image of this kind is looked up in (the colour bar gives each image
    ``colormap(kind)``'s 256-entry table): read-only."""
    table = argb_words(colormap(kind).getLookupTable(nPts=256))
    if table is not None:
        table.setflags(write=False)
    return table


def argb_image(img: np.ndarray, lo: float, hi: float, lut32: np.ndarray) -> np.ndarray:
    """A float map (NaN: transparent) as ARGB32 words: the colour indices of pyqtgraph's
    ``rescaleData`` ((x − lo) · n / (hi − lo), clipped, the same float arithmetic) looked up in
    ``lut32``. Pure numpy: the trace worker runs it ahead of the window (``prerender``)."""
    n = lut32.shape[0]
    rng = (hi - lo) or 1.0
    work = np.float32 if np.can_cast(img.dtype, np.float32) else np.float64
    y = np.array(img, dtype=work, order="C")  # rescaleData: (x - offset) * scale, clipped
    y -= lo
    y *= float(n / rng)
    np.clip(y, 0, n - 1, out=y)
    nan = np.isnan(y)
    has_nan = bool(nan.any())
    if has_nan:
        y[nan] = 0
    argb = lut32[y.astype(np.uint8)]
    if has_nan:
        argb[nan] = 0                          # transparent
    return argb


# (rows, cols, maps of the panel, which map) -> the stride the window last drew such a map at: the
# trace worker pools the next trace's weights at it ahead (prerender), off the window's thread. Per
# map: in a grid of heads the ones beside the row labels are narrower, drawn at another stride
_LAST_STRIDE: dict[tuple[int, int, int, int], int] = {}


def prerender(data: MatrixData) -> None:
    """Make what the window draws of ``data``'s maps now (the float image and its ARGB words,
    kept in the display cache): on the trace worker, before the result reaches the window.
    Only maps drawn whole whatever the panel's size (≤ MIN_DISPLAY a side: stride 1); weights
    drawn smaller are pooled ahead (MapData.pooled) at the stride the window last drew them at
    (12 heads × 1024 tokens: ~14 ms the window's thread no longer spends)."""
    if data.kind == "prob":
        for k, m in enumerate(data.maps):
            stride = _LAST_STRIDE.get((*m.values.shape, len(data.maps), k)) if m.source is not None else None
            if stride and stride > 1:
                m.pooled(stride)
    if data.extra.get("row_scaled"):
        return
    table = colour_table(data.kind)
    if table is None:
        return
    lo, hi = float(data.levels[0]), float(data.levels[1])
    what = rendered_key(data)
    todo = [m for m in data.maps if m.source is not None and 0 < m.values.size
            and max(m.values.shape) <= MIN_DISPLAY and m.found(what) is None]
    if len({m.values.shape for m in todo}) == 1 and len(todo) > 1:
        # the heads' maps (all one shape) looked up together: one pass of numpy calls, not 12
        words = argb_image(np.stack([m.display(1) for m in todo]), lo, hi, table)   # (n, R, C)
        for m, w in zip(todo, words):
            m.keep(what, w)                                     # each (R, C), C-contiguous
        return
    for m in todo:
        img = m.display(1)
        m.kept(what, lambda img=img: argb_image(img, lo, hi, table))


def rendered_key(data: MatrixData) -> tuple:
    """Under what a map's ARGB words for ``data``'s levels and colours are kept (MapData.kept)."""
    return ("argb", float(data.levels[0]), float(data.levels[1]), data.kind)


class _Image(pg.ImageItem):
    """pyqtgraph's ImageItem, with a shorter way from a float map to the QImage it paints.

    pyqtgraph maps a float image with NaNs to an RGBA8888 QImage through generic code (~0.1 ms
    a map, more for big ones). Here the same colour indices (the same float arithmetic as
    ``pyqtgraph.functions.rescaleData``) look up an ARGB32 table directly, NaN cells fully
    transparent: the same colour in every cell. The image is premultiplied (with opaque colours
    and transparent NaN cells the words are the same): QPainter scales it through its fast path,
    ~12× faster than a non-premultiplied one (12 maps of 64 × 64 drawn 100 px wide: 1.4 →
    0.1 ms a repaint); its nearest-neighbour sampling may put a cell edge one pixel away from
    where pyqtgraph's own path puts it. Anything else (other image types, translucent colour
    maps) goes through pyqtgraph's own render.
    """

    _lut_key = None
    _lut32 = None
    _rendered = None            # (ARGB words, levels, table) made ahead for the image just set

    def _argb_lut(self, lut) -> np.ndarray | None:
        if self._lut_key is not lut:             # ImageItem.setLookupTable stores a new array
            self._lut_key, self._lut32 = lut, argb_words(lut)
        return self._lut32

    def set_rendered(self, argb: np.ndarray, levels, table: np.ndarray) -> None:
        """The image just given to setImage, already looked up (``argb_image``, e.g. on the trace
        worker): used by the next render if the levels and colour table are still these."""
        self._rendered = (argb, (float(levels[0]), float(levels[1])), table)

    def render(self) -> None:
        # an exception out of paint() takes the whole app down (shiboken): fall back instead
        try:
            if self._render_argb():
                return
        except Exception:       # pyqtgraph's own path below still draws
            pass
        super().render()

    def _render_argb(self) -> bool:
        img, levels = self.image, self.levels
        if (img is None or img.ndim != 2 or img.size == 0 or img.dtype.kind != "f" or levels is None
                or np.ndim(levels) != 1 or len(levels) != 2 or self.autoDownsample
                or self.axisOrder != "row-major"):
            return False
        lut32 = self._argb_lut(self.lut)
        if lut32 is None:
            return False
        lo, hi = float(levels[0]), float(levels[1])
        ready, self._rendered = self._rendered, None
        if (ready is not None and ready[1] == (lo, hi) and ready[0].shape == img.shape
                and np.array_equal(ready[2], lut32)):
            argb = ready[0]
        else:
            argb = argb_image(img, lo, hi, lut32)
        self.qimage = fn.ndarray_to_qimage(argb, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        self._processingBuffer = None
        self._displayBuffer = None
        self._renderRequired = False
        self._unrenderable = False
        return True
