"""Stage 8's dial: the pairs of one query and one key as 2-D arrows, before and after RoPE.

For the position under the RoPE bar's pointer (m) one small pyqtgraph plot per pair i: the
query's pair (q_x, q_y) before the rotation (grey) and after it (blue, turned by m·θ_i), and the
key's pair at the same position (light / dark orange). Every arrow keeps its length; pair 0 turns
fastest. The numbers are the trace's (rope.q_pairs, q_pairs_rot, k_pairs, k_pairs_rot, angles)."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

COLOURS = {"q": ("#9e9e9e", "#1f5fbf"), "k": ("#f2b880", "#d35400")}


class RopeDial(QtWidgets.QWidget):
    def __init__(self, model, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ropeDial")
        self.model = model
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.heading = QtWidgets.QLabel(objectName="ropeDialHeading")
        self.heading.setWordWrap(True)
        lay.addWidget(self.heading)
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground("w")
        lay.addWidget(self.plots, 1)
        self.drawn: list[dict] = []            # per pair: what was drawn (the tests read it)
        model.external_changed.connect(lambda s: self.refresh() if s == "rope" else None)

    def refresh(self) -> None:
        view = self.model.external["rope"].view
        self.plots.clear()
        self.drawn = []
        if view is None:
            self.heading.setText(self.model.external_status("rope") or "")
            return
        m = view.pointer
        arr = {n: view["rope", n].numpy()[m] for n in ("q_pairs", "q_pairs_rot", "k_pairs", "k_pairs_rot")}
        ang = view["rope", "angles"].numpy()[m]
        npairs = arr["q_pairs"].shape[0]
        self.heading.setText(
            f"<b>Position m = {m} ({view.labels[m]})</b>: each pair of the query (grey → <span style='color:#1f5fbf'>"
            f"blue</span>) and of the key (light → <span style='color:#d35400'>dark orange</span>) turned by m·θ_i. "
            f"Move the pos slider: pair 0 turns fastest.")
        reach = max(float(np.abs(np.stack(list(arr.values()))).max()), 1e-6) * 1.15
        cols = max(1, math.ceil(math.sqrt(npairs)))      # 4 pairs: 2 × 2 square dials
        for i in range(npairs):
            deg = math.degrees(float(ang[i]))
            p = self.plots.addPlot(row=i // cols, col=i % cols,
                                   title=f"pair {i}: m·θ = {float(ang[i]):.3g} rad ({deg % 360:.0f}°)")
            p.setAspectLocked(True)
            p.setXRange(-reach, reach, padding=0)
            p.setYRange(-reach, reach, padding=0)
            p.showGrid(x=True, y=True, alpha=0.2)
            p.hideButtons()
            p.setMouseEnabled(False, False)
            t = np.linspace(0, 2 * math.pi, 64)
            for who in ("q", "k"):
                r = float(np.hypot(*arr[f"{who}_pairs"][i]))
                p.plot(r * np.cos(t), r * np.sin(t), pen=pg.mkPen(COLOURS[who][0], width=1, style=pg.QtCore.Qt.PenStyle.DotLine))
                for k, name in enumerate((f"{who}_pairs", f"{who}_pairs_rot")):
                    x, y = (float(v) for v in arr[name][i])
                    p.plot([0, x], [0, y], pen=pg.mkPen(COLOURS[who][k], width=3 if k else 2))
                    p.plot([x], [y], pen=None, symbol="o", symbolSize=7, symbolBrush=COLOURS[who][k], symbolPen=None)
            self.drawn.append({n: tuple(float(v) for v in arr[n][i]) for n in arr} | {"angle": float(ang[i])})
