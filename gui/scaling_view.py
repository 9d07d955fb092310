"""Why 1/√d_k: a toggle that removes the scaling, and how peaked softmax gets as d_k grows.

Left: the trainable stage's attention weights, softmax(Q Kᵀ / √d_k) or, with the toggle off,
softmax(Q Kᵀ) (computed here from the trace's scores), with the mean largest weight per row.
Right: ``core.scaling.peakedness_curve`` (pyqtgraph): the mean largest weight and the mean
row entropy against d_k, with and without the scaling, for the current inputs and for
random vectors — unscaled, softmax collapses onto one key as d_k grows.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from gui.plots import side_by_side
from gui.refresh import RefreshWhenShown
from gui.matrices import MapData, MatrixData

MAX_CURVE_TOKENS = 64          # the curve uses at most this many of the inputs' tokens
PENS = {("your inputs", True): ("#1f77b4", QtCore.Qt.PenStyle.SolidLine),
        ("your inputs", False): ("#1f77b4", QtCore.Qt.PenStyle.DashLine),
        ("random vectors", True): ("#d62728", QtCore.Qt.PenStyle.SolidLine),
        ("random vectors", False): ("#d62728", QtCore.Qt.PenStyle.DashLine)}


def weights(trace, scaled: bool) -> np.ndarray:
    """The trainable stage's attention weights with or without 1/√d_k."""
    if scaled:
        return trace["trainable", "attn_weights"].numpy().astype(np.float64)
    from core.stages.trainable import weights_of
    return weights_of(trace["trainable", "attn_scores"].tensor, trace.config.d_out, scaled=False).numpy()


class ScalingView(RefreshWhenShown, QtWidgets.QWidget):

    needs = ("trainable",)   # read by refresh() (a partial trace may lack them)
    def __init__(self, model, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("scalingView")
        self.model = model
        self.curves = []
        self._stale = True
        from gui.heatmap import MatrixPanel
        self.toggle = QtWidgets.QCheckBox("scale the scores by 1/√d_k", objectName="scaleToggle")
        self.toggle.setChecked(True)
        self.toggle.setToolTip("Untick to see the weights softmax gives the raw scores Q Kᵀ (no scaling)")
        self.toggle.toggled.connect(lambda _on: self.refresh_weights())
        self.stats = QtWidgets.QLabel(objectName="scaleStats")
        self.stats.setWordWrap(True)
        self.heatmap = MatrixPanel(self)
        self.heatmap.setMinimumSize(160, 120)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.toggle)
        left.addWidget(self.heatmap, 1)
        left.addWidget(self.stats)

        self.plots, (self.peak_plot, self.entropy_plot) = side_by_side(
            ["mean largest weight per row", "mean row entropy (nats)"], "d_k (log scale)", log_y=False)
        self.plots.setMinimumSize(300, 140)
        self.key = QtWidgets.QLabel(
            "<span style='color:#1f77b4'><b>blue</b></span>: your inputs (projected to width d_k) · "
            "<span style='color:#d62728'><b>red</b></span>: random vectors · "
            "solid ——: ÷ √d_k · dashed – – –: unscaled", objectName="scaleKey")
        note = QtWidgets.QLabel(
            "Dot products of d_k random entries have a variance that grows with d_k: unscaled (dashed), "
            "the scores spread apart and softmax puts almost all weight on one key (largest weight → 1, "
            "entropy → 0), where its gradients vanish. Dividing by √d_k (solid) keeps them steady.")
        note.setWordWrap(True)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.key)
        right.addWidget(self.plots, 1)
        right.addWidget(note)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(left, 2)
        lay.addLayout(right, 3)
        self.watch_trace(model)

    @property
    def scaled(self) -> bool:
        return self.toggle.isChecked()

    def refresh(self) -> None:
        if self.model.chapter_trace() is None:
            return
        self._stale = False
        self.refresh_weights()
        self.refresh_curves()

    def refresh_weights(self) -> None:
        trace = self.model.chapter_trace()
        if trace is None:
            return
        w = weights(trace, self.scaled)
        labels = tuple(trace.labels)
        d_k = trace.config.d_out
        sym = "softmax(Q Kᵀ / √d_k)" if self.scaled else "softmax(Q Kᵀ)  (no scaling)"
        data = MatrixData(key=("trainable", "attn_weights"), title=f"{sym}, d_k = {d_k}", symbol="α",
                          meaning="attention weights" + ("" if self.scaled else " without 1/√d_k"),
                          maps=[MapData(w, None)], row_labels=labels, col_labels=labels, row_axis="query",
                          col_axis="key", kind="prob", levels=(0.0, 1.0), template="α[{r}, {c}] = {v}")
        self.heatmap.set_matrix(data)
        other = weights(trace, not self.scaled)
        peak, peak_other = float(w.max(axis=1).mean()), float(other.max(axis=1).mean())
        self.stats.setText(
            f"mean largest weight per row: <b>{peak:.4f}</b> "
            f"({'unscaled' if self.scaled else 'scaled'}: {peak_other:.4f}); uniform would be {1 / len(labels):.4f}")

    def refresh_curves(self) -> None:
        trace = self.model.chapter_trace()
        from core.inputs import Inputs
        from core.scaling import peakedness_curve
        inp = trace.inputs
        if len(inp.tokens) > MAX_CURVE_TOKENS:
            inp = Inputs(inp.tokens[:MAX_CURVE_TOKENS], inp.array[:MAX_CURVE_TOKENS])
        try:
            self.curves = peakedness_curve(trace.config, inputs=inp)
        except Exception as exc:   # never take the app down for a plot
            self.peak_plot.setTitle(f"cannot compute: {exc}")
            return
        self.peak_plot.clear()
        self.entropy_plot.clear()
        for c in self.curves:
            src, _, how = c.label.partition(", ")
            colour, style = PENS.get((src, how != "unscaled"), ("#444", QtCore.Qt.PenStyle.SolidLine))
            pen = pg.mkPen(colour, width=2, style=style)
            x = np.array(c.d_ks, dtype=float)
            self.peak_plot.plot(x, c.max_weight, pen=pen, symbol="o", symbolSize=5, symbolBrush=colour,
                                symbolPen=None, name=c.label)
            self.entropy_plot.plot(x, c.entropy, pen=pen, symbol="o", symbolSize=5, symbolBrush=colour,
                                   symbolPen=None)
        d_k = trace.config.d_out
        for p in (self.peak_plot, self.entropy_plot):
            line = pg.InfiniteLine(pos=math.log10(d_k), angle=90, pen=pg.mkPen("#888", style=QtCore.Qt.PenStyle.DotLine),
                                   label=f"d_k = {d_k}", labelOpts={"color": "#555", "position": 0.9})
            p.addItem(line)
        self.peak_plot.setYRange(0, 1.02)
