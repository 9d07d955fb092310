"""Equivalences, shown not told: difference heatmaps of the chapter's equal implementations.

Four comparisons from ``core.equivalence``, each drawn as left − right with its max |diff|
printed: approach A vs approach B masking; the fused implementation loaded with the
wrapper's heads concatenated vs the wrapper; the naive softmax vs ``torch.softmax``; the
trace vs ``F.scaled_dot_product_attention``. Recomputed when the view is visible and the
trace changes.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
from PySide6 import QtWidgets

from gui.refresh import RefreshWhenShown
from gui.matrices import MapData, MatrixData


@dataclass(frozen=True)
class Comparison:
    key: str
    title: str            # left vs right
    label: str            # the difference's symbol
    what: str             # one line: why they agree
    cols: str             # "tokens" or the name of an intermediate whose column labels to use


COMPARISONS = (
    Comparison("masking", "Approach A vs approach B (causal masking)", "A_renorm − A",
               "softmax, × mask, renormalise rows  vs  −∞ above the diagonal, then softmax", "tokens"),
    Comparison("fused", "Fused MultiHeadAttention vs the wrapper", "fused − wrapper",
               "the fused projections loaded with the wrapper's heads concatenated (before out_proj)",
               "wrapper_context_vecs"),
    Comparison("softmax", "softmax_naive vs torch.softmax", "naive − torch",
               "exp(ω) / Σ exp(ω) written out  vs  torch.softmax (which subtracts the row max first)", "tokens"),
    Comparison("sdpa", "This trace vs F.scaled_dot_product_attention", "trace − sdpa",
               "softmax(mask(Q Kᵀ) / √d_k) V from the trace  vs  torch's fused kernel (is_causal)", "values"),
)


def compute(trace) -> dict[str, tuple[np.ndarray, float]]:
    """key -> (left − right as a 2-D float64 array (batch item 0), max |diff|)."""
    from core import equivalence as eq
    fns = {"masking": eq.masking_approaches, "fused": eq.fused_from_wrapper,
           "softmax": eq.softmax_naive_vs_torch, "sdpa": eq.trace_vs_sdpa}
    out = {}
    for c in COMPARISONS:
        left, right = fns[c.key](trace)
        diff = eq.max_abs_diff(left, right)
        a = left.detach().double().cpu().numpy()
        b = right.detach().double().cpu().numpy()
        with np.errstate(invalid="ignore"):
            d = np.where(a == b, 0.0, a - b)        # equal infinities (masked cells) are equal
        while d.ndim > 2:
            d = d[0]
        out[c.key] = (d, diff)
    return out


def matrix_data(c: Comparison, d: np.ndarray, diff: float, trace) -> MatrixData:
    tokens = tuple(trace.labels)
    if c.cols == "tokens":
        cols = tokens
        col_axis = "key"
    else:
        stage = "multihead" if c.cols.startswith("wrapper") else "trainable"
        cols = tuple(trace[stage, c.cols].labels[-1])
        col_axis = "out"
    # finite cells only: a naive softmax that overflows (large d_in) gives nan/inf differences
    top = max(float(np.max(np.abs(d), where=np.isfinite(d), initial=0.0)), 1e-6)
    return MatrixData(
        key=("equivalence", c.key), title=f"{c.label}   max |diff| = {diff:.2e}", symbol=c.label,
        meaning=c.what, maps=[MapData(d, None)], row_labels=tokens[:d.shape[0]], col_labels=cols[:d.shape[1]],
        row_axis="query", col_axis=col_axis, kind="diff", levels=(-top, top),
        template=c.label + "[{r}, {c}] = {v}", extra={"max_abs_diff": diff})


class EquivalenceView(RefreshWhenShown, QtWidgets.QWidget):

    needs = ("simplified", "trainable", "causal", "multihead")   # read by refresh() (a partial trace may lack them)
    def __init__(self, model, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("equivalences")
        self.model = model
        self.results: dict[str, float] = {}          # key -> max |diff| shown
        self.datas: dict[str, MatrixData] = {}
        self._stale = True
        from gui.heatmap import MatrixPanel
        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        self.captions: dict[str, QtWidgets.QLabel] = {}
        self.panels: dict[str, MatrixPanel] = {}
        for k, c in enumerate(COMPARISONS):
            box = QtWidgets.QVBoxLayout()
            cap = QtWidgets.QLabel(objectName=f"eq_{c.key}_caption")
            cap.setWordWrap(True)
            cap.setToolTip(c.what)
            panel = MatrixPanel(self)
            panel.setMinimumSize(160, 120)
            panel.hovered.connect(lambda text, cap=cap: cap.setToolTip(text))
            box.addWidget(cap)
            box.addWidget(panel, 1)
            grid.addLayout(box, k // 2, k % 2)
            self.captions[c.key] = cap
            self.panels[c.key] = panel
        self.watch_trace(model)

    def refresh(self) -> None:
        trace = self.model.chapter_trace()
        if trace is None:
            return
        self._stale = False
        try:
            results = compute(trace)
        except Exception as exc:     # never take the app down
            for cap in self.captions.values():
                cap.setText(f"cannot compare: {html.escape(str(exc))}")
            return
        for c in COMPARISONS:
            d, diff = results[c.key]
            data = matrix_data(c, d, diff, trace)
            self.datas[c.key] = data
            self.results[c.key] = diff
            ok = "#2a7d2a" if diff <= 1e-6 else "#b00020"
            self.captions[c.key].setText(
                f"<b>{html.escape(c.title)}</b><br><span style='color:#555'>{html.escape(c.what)}</span><br>"
                f"<span style='color:{ok}'><b>max |diff| = {diff:.2e}</b></span>")
            self.panels[c.key].set_matrix(data)
