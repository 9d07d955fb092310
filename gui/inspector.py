"""The cell inspector: click any cell of a step's matrix and see how that number is made.

The view model emits ``cell_clicked(MatrixData, map, row, column)``; the inspector asks
``core.provenance.explain_cell`` for the arithmetic (with the real numbers), shows it as text
and, for dot products, as a table of the terms (a, b, a·b) with their sum, and lights up the
cells that feed the clicked one: it sets the model's ``marks`` (the step view frames them in
its heatmaps: orange the sources, blue the clicked cell) and frames them in its own small
heatmaps of the sources the step does not show. After an edit the same cell is explained
again with the new numbers.

The numbers always come from one trace: the one of the step where the cell was clicked. The panel
names that step, the preset (the Book section, or the own settings) and the sizes; a step drawn
from another trace (another Book section) or another preset clears the panel instead of
recomputing the cell under different settings.
"""
from __future__ import annotations

import html
import math

from PySide6 import QtCore, QtWidgets

from gui.view_model import Mark, ViewModel, frames_for

ROLE_VALUE = QtCore.Qt.ItemDataRole.UserRole
MAX_SOURCE_PANELS = 3                      # sources not on the step are drawn here, framed


def _f(v: float, digits: int = 6) -> str:
    if math.isinf(v):
        return "−∞" if v < 0 else "∞"
    return f"{v:.{digits}f}"


def full_index(data, map_index: int, row: int, col: int, trace) -> tuple[int, ...]:
    """The intermediate's full index of a clicked cell (lead batch/head indices included)."""
    m = data.maps[map_index]
    item = trace[data.key]
    n_lead = len(m.index)
    if len(item.shape) - n_lead == 1:             # a bias, drawn as one row
        return m.index + (col,)
    return m.index + (row + data.row_offset, col)


class Inspector(QtWidgets.QWidget):
    """The panel: formula and arithmetic (text), the terms of a dot product (table)."""

    def __init__(self, model: ViewModel, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("inspector")
        self.model = model
        self.explanation = None            # the Explanation shown
        self.cell: tuple | None = None     # (stage, name, index) of the clicked cell
        self._gone: tuple | None = None    # (cell, origin, origin text, its trace still shown) of a cell cleared
        self.origin: tuple | None = None   # (step index, traces mode, trace) the cell was clicked on

        self.text = QtWidgets.QTextBrowser(objectName="inspectorText")
        self.text.setHtml("<p style='color:#555'>Click any cell of a matrix to see how its number is made.</p>")
        self.table = QtWidgets.QTableWidget(0, 3, objectName="inspectorTerms")
        self.table.setHorizontalHeaderLabels(["a", "b", "a · b"])
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.setToolTip("The terms of the dot product, their products and the sum (the cell's value)")
        self.table.hide()
        from gui.keys import keep_navigation_keys
        keep_navigation_keys(self.text, self.table)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.text)
        split.addWidget(self.table)
        self.source_host = QtWidgets.QWidget(objectName="inspectorSources")
        src_lay = QtWidgets.QVBoxLayout(self.source_host)
        src_lay.setContentsMargins(0, 0, 0, 0)
        src_lay.addWidget(QtWidgets.QLabel("<b>Feeds from</b> (not on this step):"))
        self.source_row = QtWidgets.QHBoxLayout()
        src_lay.addLayout(self.source_row, 1)
        self.source_panels: list = []      # MatrixPanels, created on first use
        self.source_datas: list = []       # what they show
        self.source_host.hide()
        split.addWidget(self.source_host)
        split.setSizes([260, 110, 160])
        lay.addWidget(split)

        model.cell_clicked.connect(self.inspect)
        model.trace_changed.connect(self._on_trace)
        model.step_changed.connect(lambda _i: self._on_step())

    # ---- explaining ------------------------------------------------------------------------
    def inspect(self, data, map_index: int, row: int, col: int) -> None:
        trace = self.model.trace
        if trace is None or data.key not in trace:
            return
        index = full_index(data, map_index, row, col, trace)
        note = ""
        if data.extra.get("max_abs_diff") is not None:
            d = float(data.maps[map_index].values[row, col])
            note = (f"<p><b>Difference cell</b>: {html.escape(data.title)}; here {d:.3e}. "
                    f"Below: the first matrix's cell.</p>")
        self.cell = (data.key[0], data.key[1], index)
        self.origin = (self.model.index, self.model.traces_mode, trace)
        self._gone = None
        self._explain(note)

    def origin_text(self) -> str:
        """Where the shown numbers come from: step, preset (Book section or own settings), sizes."""
        if self.origin is None:
            return ""
        from gui.steps import step_numbers
        index, mode, trace = self.origin
        step = self.model.steps[index]
        cfg = trace.config
        if step.stage == "pretrained":        # the real model: no Book section, no own settings
            return (f"Step {step_numbers()[index]} {step.title} · all-MiniLM-L6-v2, layer {cfg.layer} · "
                    f"{len(trace.tokens)} pieces, d_in {cfg.d_in}, 12 heads")
        preset = (f"Book preset, § {self.model.section_title(step.section)}" if mode == "book" else "own settings")
        heads = f", {cfg.num_heads} head{'s' if cfg.num_heads != 1 else ''}" if step.stage == "multihead" else ""
        return (f"Step {step_numbers()[index]} {step.title} · {preset} · {len(trace.tokens)} tokens, "
                f"d_in {cfg.d_in}, d_out {cfg.d_out}{heads}")

    def _on_step(self) -> None:
        """Another step: keep the cell while that step is drawn from the same trace (frame its
        sources there), else clear: its numbers would come from other settings. A cell cleared
        earlier comes back on a step drawn from its trace again; elsewhere the note on why it went
        is said again for the step on screen."""
        if self.cell is None:
            if self._gone is not None:
                cell, origin, _text, kept = self._gone
                if not kept:                    # its trace is gone for good: the note was about that
                    self._gone = None
                    self._show_gone("")
                elif self.model.trace is origin[2]:
                    self.cell, self.origin, self._gone = cell, origin, None
                    self._explain("")
                else:
                    self._show_gone(self._why_gone(origin))
            return
        if self.model.trace is not self.origin[2]:
            self.clear(self._why_gone())
            return
        self._explain("")

    def _on_trace(self) -> None:
        """New traces (an edit, new settings): explain the same cell again with the new numbers
        when it still exists under the same preset, else clear."""
        if self.cell is None:
            gone = self._gone
            if gone is not None and gone[3] and self.model.trace_for(self.model.steps[gone[1][0]]) is not gone[1][2]:
                self._gone = gone[:3] + (False,)    # its step has new numbers: the cell cannot come back
            return
        index, mode, _old = self.origin
        m = self.model
        was = self.origin_text()
        trace = m.trace_for(m.steps[index])
        stage, name, cell = self.cell
        if trace is None or m.trace is not trace or (stage, name) not in trace:
            self.clear(self._why_gone(), kept=False)
            return
        shape = trace[stage, name].shape
        if len(cell) != len(shape) or any(i >= n for i, n in zip(cell, shape)):
            self.clear("the new settings have no such cell", kept=False)
            return
        self.origin = (index, m.traces_mode, trace)
        note = ""
        if m.traces_mode != mode:          # said, not silent: the same cell under the other preset
            note = (f"<p style='color:#a05a00'>The preset changed: this cell is now recomputed under "
                    f"{'the Book preset' if m.traces_mode == 'book' else 'your own settings'} "
                    f"(it was {html.escape(was)}).</p>")
        self._explain(note)

    def _why_gone(self, origin: tuple | None = None) -> str:
        """Why the clicked cell is not explained on the current step: another Book section,
        stage 5's real model (which has no Book section) or a trace of stage 6–8's own (their bar's
        settings) on one side. ``origin``: where the cell was clicked (default: the cell's)."""
        from gui.scheduler import is_chapter
        origin = origin or self.origin
        was = self.model.steps[origin[0]] if origin else self.model.step
        now = self.model.step
        if now.stage == was.stage and not is_chapter(now):
            return ("the real model's text or layer changed" if now.stage == "pretrained"
                    else "the settings in the bar above the steps changed")
        if now.stage == "pretrained":
            return "stage 5 runs the real model (all-MiniLM-L6-v2), not the chapter's settings"
        if not is_chapter(now):
            return "this step draws its own trace (the settings in the bar above the steps), not the chapter's"
        if was.stage == "pretrained":
            return "this step is computed from the chapter's settings, not the real model"
        if not is_chapter(was):
            return "this step is computed from the chapter's settings, not that step's own"
        return "this step is computed from another Book section"

    def clear(self, reason: str = "", kept: bool = True) -> None:
        """Forget the cell (it belongs to another trace); say which one it was and why it went.
        ``kept``: its trace is still the one of its step (a step drawn from it brings it back)."""
        self._gone = (self.cell, self.origin, self.origin_text(), kept) if self.cell is not None and reason else None
        self.cell = self.origin = self.explanation = None
        self._show_gone(reason)
        self.table.setRowCount(0)
        self.table.hide()
        self.source_datas = []
        self.source_host.hide()
        self._clear_marks()

    def _show_gone(self, reason: str) -> None:
        """The panel without a cell: which cell went and why (``reason``), if one did."""
        was = ""
        if self._gone is not None:
            (stage, name, index), _origin, origin_text, _kept = self._gone
            was = (f"<p style='color:#555'>The cell {html.escape(stage)}.{html.escape(name)}"
                   f"[{', '.join(map(str, index))}] was clicked on {html.escape(origin_text)}; "
                   f"{html.escape(reason)}, so it is not explained here.</p>")
        self.text.setHtml(was + "<p style='color:#555'>Click any cell of a matrix to see how its number is made.</p>")

    def _explain(self, note: str) -> None:
        from core.provenance import explain_cell
        stage, name, index = self.cell
        trace = self.model.trace
        try:
            e = explain_cell(trace, stage, name, index)
        except Exception as exc:       # never take the app down for an explanation
            self.text.setHtml(f"<p>cannot explain {stage}.{name}{list(index)}: {html.escape(str(exc))}</p>")
            return
        self.explanation = e
        self.text.setHtml(self._html(e, note))
        self._fill_table(e)
        self._mark(e)

    def _html(self, e, note: str) -> str:
        where = f"{e.stage}.{e.name}[{', '.join(map(str, e.index))}]"
        check = ""
        if math.isfinite(e.recomputed) and math.isfinite(e.value):
            diff = abs(e.recomputed - e.value)
            f32 = " — the cell is float32, the terms are summed in float64" \
                if self.model.trace.config.dtype == "float32" and diff else ""
            check = (f"<p style='color:#2a7d2a'>rebuilt from the terms: {_f(e.recomputed, 8)} "
                     f"(|diff| {diff:.1e}{f32})</p>")
        lines = "<br>".join(html.escape(line) for line in e.lines)
        srcs = ", ".join(f"{s.stage}.{s.name}" + (f"[{', '.join(map(str, s.lead))}]" if s.lead else "")
                         for s in e.sources)
        editable = e.name == "inputs" or (e.stage in ("trainable", "causal")
                                          and e.name in ("W_query", "W_key", "W_value"))
        if e.kind == "given" and editable:
            note += "<p style='color:#555'>Change it in View → Edit inputs (Ctrl+I): every step follows.</p>"
        origin = (f"<p style='color:#555; font-size:small'>from {html.escape(self.origin_text())}</p>"
                  if self.origin else "")
        return (f"{origin}{note}<p><b>{html.escape(e.formula)}</b></p>"
                f"<p>value = <b>{_f(e.value, 8)}</b> <span style='color:#777'>({where})</span></p>"
                f"<p style='font-family: monospace; white-space: pre-wrap;'>{lines}</p>{check}"
                + (f"<p style='color:#555'>fed by: {html.escape(srcs)} "
                   "<span style='color:#ff8c00'>■</span> framed in their heatmaps</p>" if srcs else ""))

    def _fill_table(self, e) -> None:
        products = e.products
        self.table.setVisible(bool(products))
        self.table.setRowCount(len(products) + 1 if products else 0)
        total = 0.0
        for r, (a, b, p) in enumerate(products):
            total += p
            for c, v in enumerate((a, b, p)):
                it = QtWidgets.QTableWidgetItem(_f(v))
                it.setData(ROLE_VALUE, float(v))
                it.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, it)
        if products:
            r = len(products)
            label = QtWidgets.QTableWidgetItem("sum")
            self.table.setItem(r, 0, label)
            self.table.setItem(r, 1, QtWidgets.QTableWidgetItem(""))
            it = QtWidgets.QTableWidgetItem(_f(total))
            it.setData(ROLE_VALUE, float(total))
            f = it.font()
            f.setBold(True)
            it.setFont(f)
            it.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(r, 2, it)
            self.table.setVerticalHeaderLabels([str(i) for i in range(len(products))] + ["Σ"])

    def shown_terms(self) -> tuple[list[float], float | None]:
        """(products, sum) as the table holds them (exact values, not the 6-decimal text)."""
        n = self.table.rowCount()
        if not n:
            return [], None
        prods = [float(self.table.item(r, 2).data(ROLE_VALUE)) for r in range(n - 1)]
        return prods, float(self.table.item(n - 1, 2).data(ROLE_VALUE))

    # ---- highlighting -----------------------------------------------------------------------
    def _clear_marks(self) -> None:
        self.model.set_marks(())
        for panel in self.source_panels:
            panel.mark([])

    def marked(self) -> list[tuple[str, str, tuple, int, int, int, int]]:
        """(stage, name, lead, x, y, w, h) of every frame the marks put on the step's matrices
        and the source heatmaps (for tests; the panels draw exactly these, ``MatrixPanel.marked``)."""
        datas = [d for d in self.model.shown] + list(self.source_datas)
        return [f.key + (f.lead, f.x, f.y, f.w, f.h) for d in datas for f in frames_for(self.model.marks, d)]

    def _show_sources(self, e, trace) -> list:
        """Draw the sources the step does not show in small heatmaps; returns (panel, data) pairs."""
        import dataclasses

        from gui.matrices import resolve_panel
        from gui.steps import Panel
        on_step = {(d.key, tuple(m.index)) for d in self.model.shown if d.extra.get("max_abs_diff") is None
                   for m in d.maps}
        missing = []
        for s in e.sources:
            key = (s.stage, s.name)
            if (key, tuple(s.lead)) in on_step or key in [m[0] for m in missing] or key not in trace:
                continue
            missing.append((key, tuple(s.lead)))
        pairs = []
        datas = []
        for key, lead in missing[:MAX_SOURCE_PANELS]:
            item = trace[key]
            batch = lead[item.axes.index("batch")] if "batch" in item.axes[:len(lead)] else self.model.batch_index
            try:
                data = resolve_panel(Panel(key=key), trace, batch)
            except Exception:        # a source that cannot be drawn is only named in the text
                continue
            if lead:
                maps = [m for m in data.maps if tuple(m.index) == lead]
                data = dataclasses.replace(data, maps=maps or data.maps)
            datas.append(data)
        from gui.heatmap import MatrixPanel
        while len(self.source_panels) < len(datas):
            panel = MatrixPanel(self.source_host)
            panel.setMinimumSize(120, 110)
            k = len(self.source_panels)        # click a source cell: explain it in turn (drill down)
            panel.cell_clicked.connect(lambda m, r, c, k=k: self.inspect(self.source_datas[k], m, r, c)
                                       if k < len(self.source_datas) else None)
            self.source_row.addWidget(panel)
            self.source_panels.append(panel)
        for k, panel in enumerate(self.source_panels):
            if k < len(datas):
                panel.set_matrix(datas[k])
                panel.show()
                pairs.append((panel, datas[k]))
            else:
                panel.hide()
        self.source_datas = datas
        self.source_host.setVisible(bool(datas))
        return pairs

    def _mark(self, e) -> None:
        """Mark the sources of ``e`` (orange) and the clicked cell (blue) in the model and in
        the inspector's own source heatmaps."""
        trace = self.model.trace
        pairs = self._show_sources(e, trace)
        marks = [Mark(s.stage, s.name, tuple(s.lead), _opt(s.rows), _opt(s.cols), "source") for s in e.sources]
        i = e.index
        cell_rows = (i[-2],) if len(i) >= 2 and len(trace[e.stage, e.name].shape) - len(i) == 0 \
            and len(trace[e.stage, e.name].shape) >= 2 else None
        lead = i[:-2] if cell_rows is not None else i[:-1]
        marks.append(Mark(e.stage, e.name, tuple(lead), cell_rows, (i[-1],), "clicked"))
        self.model.set_marks(marks)
        for panel, data in pairs:
            panel.mark(frames_for(self.model.marks, data))


def _opt(seq) -> tuple[int, ...] | None:
    return None if seq is None else tuple(int(v) for v in seq)
