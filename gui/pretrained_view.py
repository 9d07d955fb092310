"""Views of the real model's heads: a 6 × 12 head gallery and BertViz-style token lines.

``PretrainedPanel(compute)`` takes a function ``text -> core.pretrained.Gallery`` (normally
``core.pretrained.gallery``) and runs it off the UI thread; the latest request wins. The
gallery draws every head's attn_weights as a thumbnail with one shared colour bar (weights
0…1) and emits ``head_clicked(layer, head)``; the token lines draw, for one head and one
query token, a line to every key whose width and opacity are the weight.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Signal

from gui.heatmap import colormap

SPECIAL_NOTE = "[CLS] and [SEP] hidden, rows renormalised"
MAX_LINE_PX = 8.0          # the width of a line of weight 1
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


from gui.tasks import TaskRunner  # noqa: E402
from gui.pooling import max_pooled  # noqa: E402  (re-exported: the gallery's pooling)


class GalleryLoader(QtCore.QObject):
    """Runs ``compute(text)`` off the UI thread (gui.tasks.TaskRunner, a thread per request: the
    latest text wins, a superseded result is dropped); ``ready``/``failed`` arrive on the UI thread."""

    ready = Signal(object)        # the Gallery
    failed = Signal(str)          # one line for the status bar
    started = Signal(str)         # the text being computed

    def __init__(self, compute: Callable[[str], object], parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self._compute = compute
        self._runner = TaskRunner(self._run, "gallery", thread_per_task=True, drop_stale=True, parent=self)
        self._runner.done.connect(self._on_done)

    def request(self, text: str) -> None:
        self.started.emit(text)
        self._runner.submit(text)

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for the running computations (tests, closing)."""
        self._runner.wait(int(timeout * 1000))

    def _run(self, text: str, _task) -> tuple[object, str]:
        try:
            return self._compute(text), ""
        except Exception as exc:  # ConfigError, ModelMissing…: a message, never a traceback
            return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def _on_done(self, outcome: tuple[object, str]) -> None:
        result, error = outcome
        if error:
            self.failed.emit(error)
        else:
            self.ready.emit(result)


# What the gallery can show and in which order: (label, score, threshold) and (label, score, descending)
FILTERS = (("all 72 heads", None, None),
           ("previous-token heads (prev ≥ 0.25)", "previous", 0.25),
           ("heads parked on [CLS] (CLS ≥ 0.6)", "cls", 0.6),
           ("heads parked on [SEP] (SEP ≥ 0.2)", "sep", 0.2),
           ("focused heads (ent ≤ 1 bit)", "entropy", -1.0))          # negative: at most |threshold|
SORTS = (("layer, head", None, False),
         ("previous-token share ↓", "previous", True),
         ("share on [CLS] ↓", "cls", True),
         ("share on [SEP] ↓", "sep", True),
         ("entropy ↑ (focused first)", "entropy", False),
         ("entropy ↓ (broad first)", "entropy", True))
MAX_THUMB_PX = 320           # a filtered gallery of a few heads: thumbnails at most this large


def score_lines(scores: dict[str, float], short: bool = False) -> tuple[str, str]:
    """The two lines printed under a thumbnail: previous-token share and share on [CLS], then
    share on [SEP] and entropy (bits); ``short``: one letter a score (narrow thumbnails)."""
    def share(v: float) -> str:
        return "–" if v != v else "1.0" if v >= 0.995 else f"{v:.2f}"[1:]
    p, c, s, e = share(scores["previous"]), share(scores["cls"]), share(scores["sep"]), scores["entropy"]
    if short:
        return f"p{p} C{c}", f"S{s} e{e:.1f}"
    nb = "\u00a0"                    # a no-break space: each score is one word (the sorted one is bold)
    return f"prev{nb}{p} CLS{nb}{c}", f"SEP{nb}{s} ent{nb}{e:.1f}"


class HeadGallery(QtWidgets.QWidget):
    """Every head's weights as a thumbnail with its scores under it; one colour bar.

    In layer/head order with every head shown, rows are layers and columns heads. Filtered or
    sorted by a score (``set_view``), the heads shown flow in that order, each named above
    its thumbnail, as large as the area allows."""

    head_clicked = Signal(int, int)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(200, 150)
        self.setMouseTracking(True)
        self._lut = _lut()
        self._weights: np.ndarray | None = None
        self._scores: dict[str, np.ndarray] | None = None   # name -> (layers, heads)
        self._max_entropy = 0.0
        self._images: dict[tuple[int, int, int], QtGui.QImage] = {}   # (layer, head, px) -> image
        self._selected: tuple[int, int] | None = None
        self.labels: tuple[str, ...] = ()
        self.filter_index = 0
        self.sort_index = 0
        self.note = ""
        self.drawn_texts: list[tuple[int, int, str, QtCore.QRectF]] = []   # (layer, head, text, rect), last paint
        self.small = QtGui.QFont(self.font())
        self.small.setPointSizeF(max(self.font().pointSizeF() - 1.5, 6.5))

    def set_weights(self, weights: np.ndarray, note: str = "", scores=None, labels: tuple[str, ...] = ()) -> None:
        """weights: (layers, heads, T, T) in [0, 1]; scores: core.head_scores.HeadScores (or None);
        labels: the T pieces (named when hovering a cell)."""
        self._weights = weights
        self.labels = tuple(labels)
        self._images = {}
        if scores is not None:
            self._scores = {n: scores.get(n).numpy() for n in ("previous", "cls", "sep", "entropy")}
            self._max_entropy = scores.max_entropy
        self.note = note
        self.update()

    def set_view(self, filter_index: int | None = None, sort_index: int | None = None) -> None:
        """Which heads (FILTERS) in which order (SORTS)."""
        if filter_index is not None:
            self.filter_index = filter_index
        if sort_index is not None:
            self.sort_index = sort_index
        self.update()

    def set_selected(self, layer: int, head: int | None) -> None:
        self._selected = None if head is None else (layer, head)
        self.update()

    def grid(self) -> tuple[int, int]:
        return tuple(self._weights.shape[:2]) if self._weights is not None else (0, 0)

    def scores_of(self, layer: int, head: int) -> dict[str, float]:
        return {n: float(v[layer, head]) for n, v in self._scores.items()} if self._scores else {}

    def natural(self) -> bool:
        """Every head in layer/head order: the layers × heads grid with row and column headers."""
        return self.filter_index == 0 and self.sort_index == 0

    def shown_heads(self) -> list[tuple[int, int]]:
        """The (layer, head) pairs drawn, in their order."""
        rows, cols = self.grid()
        heads = [(l, h) for l in range(rows) for h in range(cols)]
        if not self._scores:
            return heads
        _label, name, threshold = FILTERS[self.filter_index]
        if name is not None:
            v = self._scores[name]
            heads = [(l, h) for l, h in heads
                     if (v[l, h] <= -threshold if threshold < 0 else v[l, h] >= threshold)]
        _label, key, descending = SORTS[self.sort_index]
        if key is not None:
            v = self._scores[key]
            heads.sort(key=lambda lh: (-v[lh] if descending else v[lh], lh))   # ties: layer, head
        return heads

    def _text_h(self) -> float:
        return QtGui.QFontMetricsF(self.small).height()

    def _geometry(self) -> tuple[float, float, float, float, int]:
        """(left, top, thumbnail side, cell pitch, columns): thumbnails as large as fit, square,
        with room under each for its two score lines (and, flowing, a name line above)."""
        fm = self.fontMetrics()
        n = len(self.shown_heads())
        lines = (2 if self._scores else 0) + (0 if self.natural() else 1)
        text = lines * self._text_h() + 2
        gap = 6.0
        right, bottom = 70, 2 * fm.height() + 8
        if self.natural():
            rows, cols = self.grid()
            left, top = fm.horizontalAdvance("L5") + 10, fm.height() + 6
            w, h = self.width() - left - right, self.height() - top - bottom
            side = min(w / max(cols, 1) - gap, h / max(rows, 1) - gap - text)
            return left, top, max(min(side, MAX_THUMB_PX), 4.0), gap, max(cols, 1)
        left, top = 4.0, 4.0
        w, h = self.width() - left - right, self.height() - top - bottom
        best, best_cols = 4.0, 1
        for cols in range(1, max(n, 1) + 1):
            rows = math.ceil(max(n, 1) / cols)
            side = min(w / cols - gap, h / rows - gap - text, MAX_THUMB_PX)
            if side > best:
                best, best_cols = side, cols
        return left, top, best, gap, best_cols

    def thumbnail_rect(self, layer: int, head: int) -> QtCore.QRectF:
        """Where (layer, head) is drawn (an empty rect when the filter hides it)."""
        left, top, side, gap, cols = self._geometry()
        if self.natural():
            text = (2 * self._text_h() + 2) if self._scores else 0
            return QtCore.QRectF(left + head * (side + gap), top + layer * (side + gap + text), side, side)
        heads = self.shown_heads()
        if (layer, head) not in heads:
            return QtCore.QRectF()
        k = heads.index((layer, head))
        text = 3 * self._text_h() + 2 if self._scores else self._text_h() + 2
        r, c = divmod(k, cols)
        name = self._text_h()
        return QtCore.QRectF(left + c * (side + gap), top + name + r * (side + gap + text), side, side)

    def head_at(self, pos: QtCore.QPointF) -> tuple[int, int] | None:
        for layer, head in self.shown_heads():
            if self.thumbnail_rect(layer, head).contains(pos):
                return layer, head
        return None

    def _image(self, layer: int, head: int, px: int) -> QtGui.QImage:
        """The thumbnail's image: one pixel per cell, or, when the cells outnumber the pixels,
        each pixel the largest weight of its block (a one-cell stripe stays visible)."""
        t = self._weights.shape[-1]
        size = t if t <= px else max(px, 1)
        key = (layer, head, size)
        if key not in self._images:
            w = self._weights[layer, head]
            self._images[key] = weights_image(w if size == t else max_pooled(w, size), self._lut)
        return self._images[key]

    def note_text(self) -> str:
        """The caption under the thumbnails: what is shown, the note, and the pooling."""
        rows, cols = self.grid()
        heads = self.shown_heads()
        if self.natural():
            caption = "rows: layers · columns: heads"
        elif self.filter_index == 0:
            caption = f"all {rows * cols} heads, sorted by {SORTS[self.sort_index][0]}"
        else:
            caption = (f"{len(heads)} of {rows * cols} heads: {FILTERS[self.filter_index][0]}, "
                       f"sorted by {SORTS[self.sort_index][0]}")
        caption += " · click a head to open its steps"
        if self.note:
            caption += f" · {self.note}"
        if self.pooled():
            caption += (f" · {self._weights.shape[-1]} pieces: each pixel the largest weight of its block "
                        "(max, not mean)")
        return caption

    def legend_text(self) -> str:
        if not self._scores:
            return ""
        t = self._weights.shape[-1] + (2 if SPECIAL_NOTE in self.note else 0)
        text = (f"under each: p(rev) = weight on the previous piece · C(LS), S(EP) = on [CLS], [SEP] · e(nt) = "
                f"entropy in bits (0: one key; {self._max_entropy:.1f}: all {t} alike)")
        if SPECIAL_NOTE in self.note:            # the thumbnails are renormalised; the scores are not
            text += " · scores of the model's own weights, [CLS]/[SEP] included"
        return text

    def pooled(self) -> bool:
        """Whether the last paint drew the thumbnails max-pooled (more pieces than pixels)."""
        _l, _t, side, _g, _c = self._geometry()
        return self._weights is not None and self._weights.shape[-1] > int(side * self.devicePixelRatioF())

    def paintEvent(self, _event) -> None:
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), self.palette().color(QtGui.QPalette.ColorRole.Base))
        self.drawn_texts = []
        rows, cols = self.grid()
        text_colour = self.palette().color(QtGui.QPalette.ColorRole.Text)
        if not rows:
            p.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, "computing every head…")
            return
        fm = self.fontMetrics()
        heads = self.shown_heads()
        p.setPen(text_colour)
        if not heads:
            p.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter,
                       f"no head of this text is one of the {FILTERS[self.filter_index][0]}")
            return
        if self.natural():
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
        dpr = self.devicePixelRatioF()
        th = self._text_h()
        sort_key = SORTS[self.sort_index][1] or FILTERS[self.filter_index][1]
        p.setFont(self.small)
        small_fm = QtGui.QFontMetrics(self.small)
        for layer, head in heads:
            r = self.thumbnail_rect(layer, head)
            p.drawImage(r, self._image(layer, head, int(r.width() * dpr)))
            width = r.width() + 6
            texts = []
            if not self.natural():
                texts.append((QtCore.QRectF(r.left() - 3, r.top() - th - 1, width, th), f"L{layer} H{head}"))
            if self._scores:
                lines = score_lines(self.scores_of(layer, head))
                if max(small_fm.horizontalAdvance(t) for t in lines) > width:
                    lines = score_lines(self.scores_of(layer, head), short=True)
                for k, line in enumerate(lines):
                    texts.append((QtCore.QRectF(r.left() - 3, r.bottom() + 1 + k * th, width, th), line))
            bold = QtGui.QFont(self.small)
            bold.setBold(True)
            for k, (rect, line) in enumerate(texts):
                # the score the heads are sorted or filtered by, in bold: (line, word) of each score
                items = line.split(" ")
                where = {"previous": (0, 0), "cls": (0, 1), "sep": (1, 0), "entropy": (1, 1)}.get(sort_key)
                first_score = 1 if not self.natural() else 0           # the name line comes first
                fonts = [bold if where == (k - first_score, i) and len(items) == 2 else self.small
                         for i in range(len(items))]
                widths = [QtGui.QFontMetricsF(f).horizontalAdvance(t) for f, t in zip(fonts, items)]
                space = small_fm.horizontalAdvance(" ")
                total = sum(widths) + space * (len(items) - 1)
                if total > rect.width():                             # too narrow even for the short form
                    p.setFont(self.small)
                    line = small_fm.elidedText(line, QtCore.Qt.TextElideMode.ElideRight, int(rect.width()))
                    p.drawText(rect, QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.AlignmentFlag.AlignTop, line)
                else:
                    x = rect.center().x() - total / 2
                    for font, text, w in zip(fonts, items, widths):
                        p.setFont(font)
                        p.drawText(QtCore.QRectF(x, rect.top(), w + 1, rect.height()),
                                   QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop, text)
                        x += w + space
                self.drawn_texts.append((layer, head, line, rect))
        self.small.setBold(False)
        p.setFont(self.font())
        if self._selected is not None and self._selected in heads:
            p.setPen(QtGui.QPen(SELECTED, 3))
            p.drawRect(self.thumbnail_rect(*self._selected).adjusted(-2, -2, 2, 2))
        self._paint_bar(p, fm, heads)
        p.setPen(text_colour)
        caption, legend = self.note_text(), self.legend_text()
        bottom = max(self.thumbnail_rect(*h).bottom() for h in heads) + (2 * th + 4 if self._scores else 2)
        for k, line in enumerate((caption, legend)):
            rect = QtCore.QRectF(4, bottom + k * (fm.height() + 1), self.width() - 8, fm.height() + 2)
            p.drawText(rect, QtCore.Qt.AlignmentFlag.AlignLeft,
                       fm.elidedText(line, QtCore.Qt.TextElideMode.ElideRight, int(rect.width())))

    def _paint_bar(self, p: QtGui.QPainter, fm: QtGui.QFontMetrics, heads) -> None:
        """One vertical colour bar for every thumbnail, weights 0 (bottom) to 1 (top)."""
        rects = [self.thumbnail_rect(*h) for h in heads]
        x = max(r.right() for r in rects) + 14
        top, bottom = min(r.top() for r in rects), max(r.bottom() for r in rects)
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
            s = self.scores_of(*hit)
            more = (f": previous-token {s['previous']:.3f}, on [CLS] {s['cls']:.3f}, on [SEP] {s['sep']:.3f}, "
                    f"entropy {s['entropy']:.2f} bits" if s else "")
            cell = self.cell_at(event.position())
            where = ""
            if cell is not None and self.labels:
                i, j = cell
                where = (f"\n{self.labels[i]} → {self.labels[j]}: weight "
                         f"{float(self._weights[hit[0], hit[1], i, j]):.4f}")
            self.setToolTip(f"layer {hit[0]}, head {hit[1]}{more}; click to open its steps{where}")
        else:
            self.setToolTip("")

    def cell_at(self, pos: QtCore.QPointF) -> tuple[int, int] | None:
        """(query, key) of the piece pair under ``pos`` in a thumbnail (of the full T × T weights)."""
        hit = self.head_at(pos)
        if hit is None or self._weights is None:
            return None
        r, t = self.thumbnail_rect(*hit), self._weights.shape[-1]
        i = min(int((pos.y() - r.top()) / r.height() * t), t - 1)
        j = min(int((pos.x() - r.left()) / r.width() * t), t - 1)
        return i, j

    def mousePressEvent(self, event) -> None:
        hit = self.head_at(event.position())
        if hit is not None:
            self.set_selected(*hit)
            self.head_clicked.emit(*hit)


class TokenLines(QtWidgets.QWidget):
    """BertViz's head view for one head: queries on the left, keys on the right, a line from the
    chosen query to every key with width and opacity = attention weight."""

    query_changed = Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None, compact: bool = False):
        super().__init__(parent)
        self.compact = compact             # one of 12 small views: a one-line title, no weights printed
        self.setMinimumSize(120 if compact else 180, 100 if compact else 150)
        if compact:
            small = QtGui.QFont(self.font())
            small.setPointSizeF(max(self.font().pointSizeF() - 1.0, 6.5))
            self.setFont(small)
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
        header = fm.height() + 4 if self.compact else fm.height() * 2 + 8
        n = max(len(self._labels), 1)
        row = min(fm.height() * 1.8, (self.height() - header - 6) / n)
        if row < fm.height():          # thin rows: their labels are a text line tall, half a line beyond each end
            row = max((self.height() - header - 6 - fm.height()) / n, 0.5)
            header += fm.height() / 2
        top = max(header, (self.height() - n * row) / 2)        # centred when there is room
        suffix = "" if self.compact else "  0.00"
        widest = max((fm.horizontalAdvance(f"{s}{suffix}") for s in self._labels), default=40)
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
        title_y = top - fm.height() - 4 if self.compact else top - 2 * fm.height() - 8
        p.drawText(QtCore.QRectF(4, title_y, self.width() - 8, fm.height() + 2), QtCore.Qt.AlignmentFlag.AlignHCenter,
                   fm.elidedText(self.title, QtCore.Qt.TextElideMode.ElideRight, self.width() - 8))
        if not self.compact:
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
            if i != self.query and (i % every or abs(i - self.query) * row < fm.height()):
                continue                                              # thinned, or under the query's label
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
                       fm.elidedText(label if self.compact else f"{label}  {float(weights[i]):.2f}", QtCore.Qt.TextElideMode.ElideRight,
                                     int(rect_r.width())))

    def mousePressEvent(self, event) -> None:
        top, row, left_x, _r = self._rows()
        if left_x - self._label_w <= event.position().x() <= left_x and self._labels:
            i = int((event.position().y() - top) // row)
            self.set_query(i)


class HeadLinesGrid(QtWidgets.QWidget):
    """Every head of one layer as small token-line views (3 rows × 4), one query for all of
    them: what "all 12" heads shows on the token lines step."""

    query_changed = Signal(int)

    def __init__(self, heads: int = 12, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.title = QtWidgets.QLabel(objectName="linesGridTitle")
        self.title.setWordWrap(True)
        self.views = [TokenLines(compact=True) for _ in range(heads)]
        grid = QtWidgets.QGridLayout()
        grid.setSpacing(2)
        for h, view in enumerate(self.views):
            grid.addWidget(view, h // 4, h % 4)
            view.query_changed.connect(self.set_query)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addLayout(grid, 1)

    @property
    def query(self) -> int:
        return self.views[0].query

    def set_weights(self, weights: np.ndarray, labels: tuple[str, ...], query: int | None, title: str,
                    head_titles: list[str]) -> None:
        """weights: (heads, T, T) of one layer."""
        self.title.setText(title)
        for h, view in enumerate(self.views):
            view.set_weights(weights[h], labels, query, head_titles[h])

    def set_query(self, query: int) -> None:
        """One head's piece clicked (or the single view's): every head shows that query."""
        for view in self.views:
            view.blockSignals(True)
            view.set_query(query)
            view.blockSignals(False)
        self.query_changed.emit(query)


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
        self.lines_grid = HeadLinesGrid()
        self.filter_box = QtWidgets.QComboBox(objectName="galleryFilter")
        self.filter_box.addItems([f[0] for f in FILTERS])
        self.filter_box.setToolTip("Show only the heads whose score passes the threshold")
        self.sort_box = QtWidgets.QComboBox(objectName="gallerySort")
        self.sort_box.addItems([f[0] for f in SORTS])
        self.sort_box.setToolTip("The order of the thumbnails: by layer and head, or by one of the scores")
        self.hide_special = QtWidgets.QCheckBox("Hide [CLS]/[SEP] (rows renormalised)")
        self.hide_special.setToolTip("BERT's heads park much of their weight on [CLS] and [SEP]; hiding them "
                                     "and dividing each row by what is left shows how the words share the rest")
        self.gallery: object | None = None
        self.scores = None                  # core.head_scores.HeadScores of the gallery's text
        self.layer, self.head = 0, 0        # head None: all 12 heads of the layer on the token lines
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.hide_special)
        top.addStretch(1)
        # the gallery with its filter and sort, and the token lines (one head, or all 12)
        self.gallery_box = QtWidgets.QWidget(objectName="galleryBox")
        controls = QtWidgets.QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(QtWidgets.QLabel("Show"))
        controls.addWidget(self.filter_box)
        controls.addSpacing(12)
        controls.addWidget(QtWidgets.QLabel("Sort by"))
        controls.addWidget(self.sort_box)
        controls.addStretch(1)
        box = QtWidgets.QVBoxLayout(self.gallery_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addLayout(controls)
        box.addWidget(self.gallery_view, 1)
        self.lines_box = QtWidgets.QWidget(objectName="linesBox")
        box = QtWidgets.QVBoxLayout(self.lines_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.lines_view, 1)
        box.addWidget(self.lines_grid, 1)
        self.lines_grid.hide()
        self.split = split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(self.gallery_box)
        split.addWidget(self.lines_box)
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
        self.filter_box.currentIndexChanged.connect(lambda i: self.gallery_view.set_view(filter_index=i))
        self.sort_box.currentIndexChanged.connect(lambda i: self.gallery_view.set_view(sort_index=i))
        self.lines_grid.query_changed.connect(self._grid_query)
        self.lines_view.query_changed.connect(self.lines_grid.set_query)

    def show_view(self, view: str) -> None:
        """Only the gallery ("gallery") or only the token lines ("lines"), the whole width."""
        self.gallery_box.setVisible(view == "gallery")
        self.lines_box.setVisible(view == "lines")

    def _grid_query(self, query: int) -> None:
        self.lines_view.blockSignals(True)
        self.lines_view.set_query(query)
        self.lines_view.blockSignals(False)

    def set_text(self, text: str) -> None:
        self.loader.request(text)

    def show_gallery(self, gallery) -> None:
        """Show a Gallery computed elsewhere (the window's stage 5 computes it with its trace)."""
        self._on_ready(gallery)

    def select(self, layer: int, head: int | None) -> None:
        """The layer and head of the token lines (head None: all 12 heads of the layer)."""
        self.layer, self.head = layer, head
        self.gallery_view.set_selected(layer, head)
        self._show_lines()

    def _on_ready(self, gallery) -> None:
        first = self.gallery is None or gallery.labels != self.gallery.labels
        self.gallery = gallery
        try:
            self.scores = gallery.scores()
        except Exception:  # a gallery without [CLS]/[SEP] pieces, say: thumbnails without scores
            self.scores = None
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
        self.gallery_view.set_weights(weights, note, self.scores, labels)
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
        all_heads = self.head is None
        self.lines_view.setVisible(not all_heads)
        self.lines_grid.setVisible(all_heads)
        if query is None:
            query = self.lines_view.query
        if all_heads:
            title = (f"<b>layer {self.layer}, all 12 heads</b> · the same query piece in each (click a piece "
                     f"on the left of any head) · line width = weight" + (f" · {note}" if note else ""))
            heads = [f"head {h}" + (f" · prev {self.scores.previous[self.layer, h]:.2f}" if self.scores else "")
                     for h in range(weights.shape[1])]
            self.lines_grid.set_weights(weights[self.layer], labels, query, title, heads)
        title = f"layer {self.layer}, head {self.head or 0}"
        if self.scores is not None:
            s = self.scores
            l, h = self.layer, self.head or 0
            title += (f" · prev {s.previous[l, h]:.2f} · on [CLS] {s.cls[l, h]:.2f} · on [SEP] {s.sep[l, h]:.2f}"
                      f" · entropy {s.entropy[l, h]:.1f} bits")
        title += f" · {note}" if note else ""
        self.lines_view.set_weights(weights[self.layer, self.head or 0], labels, query, title)
