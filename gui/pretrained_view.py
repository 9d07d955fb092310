"""Views of the real model's heads: a 6 × 12 head gallery and BertViz-style token lines.

``PretrainedPanel(compute)`` takes a function ``text -> core.pretrained.Gallery`` (normally
``core.pretrained.gallery``) and runs it off the UI thread; the latest request wins. The
gallery draws every head's attn_weights as a thumbnail with one shared colour bar (weights
0…1) and emits ``head_clicked(layer, head)``; the token lines draw, for one head and one
query token, a line to every key whose width and opacity are the weight.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Signal

from gui.heatmap import colormap

SPECIAL_NOTE = "[CLS] and [SEP] hidden, rows renormalised"
MAX_LINE_PX = 8.0          # the width of a line of weight 1
MAX_THUMB_CELLS = 64       # longer texts are max-pooled to this many cells a side in the gallery
SELECTED = QtGui.QColor(230, 120, 20)
LINE = QtGui.QColor(25, 70, 150)


def _lut() -> np.ndarray:
    """256 RGB rows of the colour map the stepper uses for weights (viridis)."""
    return colormap("sequential").getLookupTable(0.0, 1.0, 256, alpha=False).astype(np.uint8)


def weights_image(weights: np.ndarray, lut: np.ndarray) -> QtGui.QImage:
    """A (T, T) array of weights in [0, 1] as an RGB image, one pixel per cell."""
    idx = np.clip(np.rint(np.nan_to_num(weights) * 255), 0, 255).astype(np.intp)
    rgb = np.ascontiguousarray(lut[idx])                                     # (T, T) -> (T, T, 3)
    h, w = weights.shape
    return QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()  # copy: owns its pixels


def max_pooled(weights: np.ndarray, size: int) -> np.ndarray:
    """(…, T, T) -> (…, size, size) by the largest weight in each block (T > size), so that a
    thumbnail a few dozen pixels wide still shows the one strong cell of a long row."""
    edges = np.linspace(0, weights.shape[-1], size + 1).astype(np.intp)[:-1]
    rows = np.maximum.reduceat(weights, edges, axis=-2)
    return np.maximum.reduceat(rows, edges, axis=-1)


class GalleryLoader(QtCore.QObject):
    """Runs ``compute(text)`` on a short-lived thread; ``ready``/``failed`` arrive on the UI thread."""

    ready = Signal(object)        # the Gallery
    failed = Signal(str)          # one line for the status bar
    started = Signal(str)         # the text being computed

    def __init__(self, compute: Callable[[str], object], parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self._compute = compute
        self._latest = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def request(self, text: str) -> None:
        with self._lock:
            self._latest += 1
            ticket = self._latest
        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=self._run, args=(ticket, text), name="gallery", daemon=True)
        self._threads.append(thread)
        self.started.emit(text)
        thread.start()

    def wait(self, timeout: float = 60.0) -> None:
        """Join the running computations (tests, closing)."""
        for t in list(self._threads):
            t.join(timeout)

    def _run(self, ticket: int, text: str) -> None:
        try:
            result = self._compute(text)
        except Exception as exc:  # ConfigError, ModelMissing…: a message, never a traceback
            if ticket == self._latest:
                self.failed.emit(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        if ticket == self._latest:                      # a newer text was asked for: drop this one
            self.ready.emit(result)


class HeadGallery(QtWidgets.QWidget):
    """Every head's weights as a thumbnail: rows are layers, columns heads; one colour bar."""

    head_clicked = Signal(int, int)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(200, 150)
        self.setMouseTracking(True)
        self._lut = _lut()
        self._images: list[list[QtGui.QImage]] = []
        self._weights: np.ndarray | None = None
        self._selected: tuple[int, int] | None = None
        self.note = ""

    def set_weights(self, weights: np.ndarray, note: str = "") -> None:
        """weights: (layers, heads, T, T) in [0, 1]."""
        self._weights = weights
        shown = weights
        if weights.shape[-1] > MAX_THUMB_CELLS:
            shown = max_pooled(weights, MAX_THUMB_CELLS)
            note = f"{note} · " if note else ""
            note += f"{weights.shape[-1]} pieces max-pooled to {MAX_THUMB_CELLS} × {MAX_THUMB_CELLS}"
        self._images = [[weights_image(shown[l, h], self._lut) for h in range(shown.shape[1])]
                        for l in range(shown.shape[0])]
        self.note = note
        self.update()

    def set_selected(self, layer: int, head: int) -> None:
        self._selected = (layer, head)
        self.update()

    def grid(self) -> tuple[int, int]:
        return (len(self._images), len(self._images[0])) if self._images else (0, 0)

    def _geometry(self) -> tuple[float, float, float, float]:
        """(left, top, thumbnail side, gap): thumbnails as large as the area allows, square."""
        rows, cols = self.grid()
        fm = self.fontMetrics()
        left, top, right, bottom = fm.horizontalAdvance("L5") + 10, fm.height() + 6, 70, fm.height() + 8
        gap = 4.0
        side = min((self.width() - left - right) / max(cols, 1), (self.height() - top - bottom) / max(rows, 1)) - gap
        return left, top, max(side, 4.0), gap

    def thumbnail_rect(self, layer: int, head: int) -> QtCore.QRectF:
        left, top, side, gap = self._geometry()
        return QtCore.QRectF(left + head * (side + gap), top + layer * (side + gap), side, side)

    def head_at(self, pos: QtCore.QPointF) -> tuple[int, int] | None:
        rows, cols = self.grid()
        for layer in range(rows):
            for head in range(cols):
                if self.thumbnail_rect(layer, head).contains(pos):
                    return layer, head
        return None

    def paintEvent(self, _event) -> None:
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), self.palette().color(QtGui.QPalette.ColorRole.Base))
        rows, cols = self.grid()
        if not rows:
            p.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, "computing every head…")
            return
        fm = self.fontMetrics()
        p.setPen(self.palette().color(QtGui.QPalette.ColorRole.Text))
        for head in range(cols):
            r = self.thumbnail_rect(0, head)
            p.drawText(QtCore.QRectF(r.left() - 10, 0, r.width() + 20, r.top() - 2),
                       QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.AlignmentFlag.AlignBottom, f"H{head}")
        for layer in range(rows):
            r = self.thumbnail_rect(layer, 0)
            p.drawText(QtCore.QRectF(0, r.top(), r.left() - 6, r.height()),
                       QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter, f"L{layer}")
        # nearest-neighbour scaling: every cell stays a crisp square
        p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, False)
        for layer in range(rows):
            for head in range(cols):
                p.drawImage(self.thumbnail_rect(layer, head), self._images[layer][head])
        if self._selected is not None and self._selected[0] < rows and self._selected[1] < cols:
            p.setPen(QtGui.QPen(SELECTED, 3))
            p.drawRect(self.thumbnail_rect(*self._selected).adjusted(-2, -2, 2, 2))
        self._paint_bar(p, fm)
        last = self.thumbnail_rect(rows - 1, 0)
        p.setPen(self.palette().color(QtGui.QPalette.ColorRole.Text))
        caption = "rows: layers · columns: heads · each thumbnail: attn_weights (query × key); click one"
        if self.note:
            caption += f" · {self.note}"
        p.drawText(QtCore.QRectF(last.left(), last.bottom() + 4, self.width() - last.left(), fm.height() + 4),
                   QtCore.Qt.AlignmentFlag.AlignLeft, fm.elidedText(caption, QtCore.Qt.TextElideMode.ElideRight,
                                                                     int(self.width() - last.left())))

    def _paint_bar(self, p: QtGui.QPainter, fm: QtGui.QFontMetrics) -> None:
        """One vertical colour bar for every thumbnail, weights 0 (bottom) to 1 (top)."""
        rows, cols = self.grid()
        top_r, bottom_r = self.thumbnail_rect(0, cols - 1), self.thumbnail_rect(rows - 1, cols - 1)
        x = top_r.right() + 14
        top, bottom = top_r.top(), bottom_r.bottom()
        bar = np.ascontiguousarray(self._lut[::-1].reshape(256, 1, 3))       # 1 at the top
        img = QtGui.QImage(bar.data, 1, 256, 3, QtGui.QImage.Format.Format_RGB888).copy()
        p.drawImage(QtCore.QRectF(x, top, 14, bottom - top), img)
        p.setPen(self.palette().color(QtGui.QPalette.ColorRole.Text))
        for value in (0.0, 0.5, 1.0):
            y = bottom - value * (bottom - top)
            p.drawLine(QtCore.QPointF(x + 14, y), QtCore.QPointF(x + 18, y))
            p.drawText(QtCore.QPointF(x + 20, y + fm.ascent() / 2 - 1), f"{value:g}")

    def mouseMoveEvent(self, event) -> None:
        hit = self.head_at(event.position())
        if hit is not None and self._weights is not None:
            self.setToolTip(f"layer {hit[0]}, head {hit[1]}: click to open its steps")
        else:
            self.setToolTip("")

    def mousePressEvent(self, event) -> None:
        hit = self.head_at(event.position())
        if hit is not None:
            self.set_selected(*hit)
            self.head_clicked.emit(*hit)


class TokenLines(QtWidgets.QWidget):
    """BertViz's head view for one head: queries on the left, keys on the right, a line from the
    chosen query to every key with width and opacity = attention weight."""

    query_changed = Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(180, 150)
        self._weights: np.ndarray | None = None
        self._labels: tuple[str, ...] = ()
        self.query = 0
        self.title = ""
        self._label_w = 40.0

    def set_weights(self, weights: np.ndarray, labels: tuple[str, ...], query: int | None = None, title: str = "") -> None:
        """weights: (T, T) of one head; labels: T pieces; query: the row shown (kept if None)."""
        self._weights = weights
        self._labels = tuple(labels)
        if query is not None:
            self.query = query
        self.query = min(max(self.query, 0), len(labels) - 1)
        self.title = title
        self.update()

    def query_label(self) -> str | None:
        return self._labels[self.query] if self._labels else None

    def set_query(self, query: int) -> None:
        if self._weights is not None and 0 <= query < len(self._labels) and query != self.query:
            self.query = query
            self.query_changed.emit(query)
            self.update()

    def _rows(self) -> tuple[float, float, float, float]:
        """(top, row height, left column's right edge x, right column's left edge x)."""
        fm = self.fontMetrics()
        header = fm.height() * 2 + 8
        n = max(len(self._labels), 1)
        row = min(fm.height() * 1.8, (self.height() - header - 6) / n)
        top = max(header, (self.height() - n * row) / 2)        # centred when there is room
        widest = max((fm.horizontalAdvance(f"{s}  0.00") for s in self._labels), default=40)
        label_w = self._label_w = min(widest + 16, self.width() * 0.3)
        # BertViz's proportions: the lines span at most ~420 px, the whole centred in the view
        span = min(self.width() - 2 * label_w, 420.0)
        left = max((self.width() - 2 * label_w - span) / 2, 0.0) + label_w
        return top, row, left, left + span

    def row_y(self, i: int) -> float:
        top, row, _l, _r = self._rows()
        return top + (i + 0.5) * row

    def lines(self) -> list[tuple[int, float, int]]:
        """(key, width in px, alpha 0..255) of every line drawn from the chosen query."""
        if self._weights is None:
            return []
        row = self._weights[self.query]
        return [(k, float(w) * MAX_LINE_PX, int(round(float(w) * 255))) for k, w in enumerate(row)]

    def paintEvent(self, _event) -> None:
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), self.palette().color(QtGui.QPalette.ColorRole.Base))
        text = self.palette().color(QtGui.QPalette.ColorRole.Text)
        fm = self.fontMetrics()
        if self._weights is None:
            p.setPen(text)
            p.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, "choose a head in the gallery")
            return
        top, row, left_x, right_x = self._rows()
        p.setPen(text)
        p.drawText(QtCore.QRectF(4, top - 2 * fm.height() - 8, self.width() - 8, fm.height() + 2), QtCore.Qt.AlignmentFlag.AlignHCenter,
                   fm.elidedText(self.title, QtCore.Qt.TextElideMode.ElideRight, self.width() - 8))
        p.drawText(QtCore.QRectF(left_x - self._label_w, top - fm.height() - 4, self._label_w - 6, fm.height()),
                   QtCore.Qt.AlignmentFlag.AlignRight, "query")
        p.drawText(QtCore.QRectF(right_x + 6, top - fm.height() - 4, self.width() - right_x, fm.height()),
                   QtCore.Qt.AlignmentFlag.AlignLeft, "key")
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        y0 = self.row_y(self.query)
        for key, width, alpha in self.lines():
            if alpha == 0:
                continue                                        # a weight under 1/510: nothing to see
            colour = QtGui.QColor(LINE.red(), LINE.green(), LINE.blue(), alpha)
            p.setPen(QtGui.QPen(colour, max(width, 0.5), QtCore.Qt.PenStyle.SolidLine, QtCore.Qt.PenCapStyle.FlatCap))
            p.drawLine(QtCore.QPointF(left_x + 4, y0), QtCore.QPointF(right_x - 4, self.row_y(key)))
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        weights = self._weights[self.query]
        every = max(1, int(np.ceil(fm.height() / row)))              # rows too thin for a label each
        for i, label in enumerate(self._labels):
            if i % every and i != self.query:
                continue
            y = self.row_y(i)
            tall = max(row, fm.height())                              # thin rows: the text overlaps its neighbours' rows
            rect_l = QtCore.QRectF(left_x - self._label_w, y - tall / 2, self._label_w - 6, tall)
            rect_r = QtCore.QRectF(right_x + 6, y - tall / 2, self._label_w - 6, tall)
            if i == self.query:
                p.fillRect(rect_l, QtGui.QColor(SELECTED.red(), SELECTED.green(), SELECTED.blue(), 60))
            # the key's weight, also as a bar under its label (full width = 1)
            bar = QtCore.QRectF(rect_r.left(), y + tall / 2 - 3, rect_r.width() * float(weights[i]), 2)
            p.fillRect(bar, LINE)
            p.setPen(text)
            p.drawText(rect_l, QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(label, QtCore.Qt.TextElideMode.ElideRight, int(rect_l.width())))
            p.drawText(rect_r, QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(f"{label}  {float(weights[i]):.2f}", QtCore.Qt.TextElideMode.ElideRight,
                                     int(rect_r.width())))

    def mousePressEvent(self, event) -> None:
        top, row, left_x, _r = self._rows()
        if left_x - self._label_w <= event.position().x() <= left_x and self._labels:
            i = int((event.position().y() - top) // row)
            self.set_query(i)


class PretrainedPanel(QtWidgets.QWidget):
    """The gallery beside the token lines of the chosen head, for one text.

    ``compute(text)`` returns a Gallery (core.pretrained.gallery); it runs off the UI thread.
    """

    head_clicked = Signal(int, int)    # forwarded from the gallery: open this head's steps
    status = Signal(str)               # progress and errors, for the status bar

    def __init__(self, compute: Callable[[str], object], parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.loader = GalleryLoader(compute, self)
        self.gallery_view = HeadGallery()
        self.lines_view = TokenLines()
        self.hide_special = QtWidgets.QCheckBox("Hide [CLS]/[SEP] (rows renormalised)")
        self.hide_special.setToolTip("BERT's heads park much of their weight on [CLS] and [SEP]; hiding them "
                                     "and dividing each row by what is left shows how the words share the rest")
        self.gallery: object | None = None
        self.layer, self.head = 0, 0
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.hide_special)
        top.addStretch(1)
        self.split = split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(self.gallery_view)
        split.addWidget(self.lines_view)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        self.loader.ready.connect(self._on_ready)
        self.loader.failed.connect(lambda msg: self.status.emit(msg))
        self.loader.started.connect(lambda _t: self.status.emit("computing every head of the model…"))
        self.gallery_view.head_clicked.connect(self._on_head_clicked)
        self.hide_special.toggled.connect(lambda _on: self._show())

    def set_text(self, text: str) -> None:
        self.loader.request(text)

    def show_gallery(self, gallery) -> None:
        """Show a Gallery computed elsewhere (the window's stage 5 computes it with its trace)."""
        self._on_ready(gallery)

    def select(self, layer: int, head: int) -> None:
        self.layer, self.head = layer, head
        self.gallery_view.set_selected(layer, head)
        self._show_lines()

    def _on_ready(self, gallery) -> None:
        first = self.gallery is None or gallery.labels != self.gallery.labels
        self.gallery = gallery
        self._show(default_query=first)
        self.status.emit(f"{len(gallery.labels)} pieces · 6 layers × 12 heads")

    def _on_head_clicked(self, layer: int, head: int) -> None:
        self.select(layer, head)
        self.head_clicked.emit(layer, head)

    def _shown(self) -> tuple[np.ndarray, tuple[str, ...], str]:
        """(layers, heads, T, T) weights as shown, their labels and the note to print."""
        if self.hide_special.isChecked():
            weights, labels = self.gallery.no_special()
            return weights.numpy(), labels, SPECIAL_NOTE
        return self.gallery.attn_weights.numpy(), self.gallery.labels, ""

    def _show(self, default_query: bool = False) -> None:
        if self.gallery is None:
            return
        weights, labels, note = self._shown()
        self.gallery_view.set_weights(weights, note)
        self.gallery_view.set_selected(self.layer, self.head)
        current = self.lines_view.query_label()
        if not default_query and current in labels:
            query = labels.index(current)            # the same piece, wherever hiding moved it
        else:
            # the last word: in the ready example, the pronoun "him"
            words = [i for i, s in enumerate(labels) if s not in ("[CLS]", "[SEP]")]
            query = words[-1] if words else 0
        self._show_lines(query)

    def _show_lines(self, query: int | None = None) -> None:
        if self.gallery is None:
            return
        weights, labels, note = self._shown()
        title = f"layer {self.layer}, head {self.head}" + (f" · {note}" if note else "")
        self.lines_view.set_weights(weights[self.layer, self.head], labels, query, title)
