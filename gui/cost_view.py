"""The Cost view: attention's quadratic cost, measured live on the selected device.

``CostView(runner)`` takes a ``core.cost.CostRunner`` (its settings say the device and
token counts). Run measures off the UI thread (gui.tasks), size after size; the table and two log-log plots
(time and peak memory against tokens, trace and fused SDPA, with a T² reference line) fill
as each size finishes. Cancel stops after the current run; Export CSV… saves the table.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from core.cost import CostCancelled, CostRow, rows_csv
from gui.plots import side_by_side
from gui.tasks import TaskRunner

TRACE_PEN = pg.mkPen("#1f77b4", width=2)
FUSED_PEN = pg.mkPen("#ff7f0e", width=2)
REF_PEN = pg.mkPen("#7f7f7f", width=1, style=QtCore.Qt.PenStyle.DashLine)
KEPT_PEN = pg.mkPen("#2ca02c", width=1, style=QtCore.Qt.PenStyle.DotLine)

COLUMNS = ("tokens", "trace ms", "fused ms", "trace ÷ fused", "trace peak", "fused peak",
           "one T×T map", "h × T×T", "T×T kept by trace", "guard estimate", "note")

FLASH_TEXT = (
    "<b>Why a fused (flash) kernel never stores the T × T weights.</b> "
    "<code>F.scaled_dot_product_attention</code> walks the keys in tiles: for a block of queries it "
    "computes the scores against one tile of keys, keeps per query row only the running maximum m and "
    "the running sum of exponentials (the <i>online softmax</i>: when a new tile raises m, the sum and "
    "the partial output are rescaled by exp(m<sub>old</sub> − m<sub>new</sub>)), adds the tile's "
    "exp(score − m)·V to the output, and drops the tile. The arithmetic is still T² — its time grows "
    "like the trace's — but memory grows only with T. The trace keeps every T × T intermediate so "
    "that you can look at each one: that is the gap between the memory curves.")


def format_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def format_ms(v: float | None) -> str:
    return "–" if v is None else (f"{v:.1f}" if v >= 1 else f"{v:.3f}")


def row_cells(row: CostRow) -> list[str]:
    """The table's texts for one row, in COLUMNS order."""
    ratio = row.ratio
    return [str(row.tokens), format_ms(row.trace_ms), format_ms(row.fused_ms),
            "–" if ratio is None else f"{ratio:.2f}×", format_bytes(row.trace_peak_bytes),
            format_bytes(row.fused_peak_bytes), format_bytes(row.tt_map_bytes), format_bytes(row.tt_heads_bytes),
            format_bytes(row.tt_kept_bytes), format_bytes(row.estimate_bytes), row.note]


def _sizes(n: int) -> str:
    return f"{n} size" if n == 1 else f"{n} sizes"


def cost_work(runner, task) -> str:
    """Run ``runner.run`` off the UI thread (gui.tasks.TaskRunner): each row goes to
    ``task.partial``, (sizes done, sizes in all, what now) to ``task.progress``. Returns
    "finished", "cancelled" or the error's message."""
    try:
        runner.run(progress=lambda *p: task.progress(p), cancelled=task.cancelled, on_row=task.partial)
    except CostCancelled:
        return "cancelled"
    except Exception as exc:  # noqa: BLE001 - shown in the view, the run must not end silently
        return f"failed: {type(exc).__name__}: {exc}"
    return "finished"


class CostView(QtWidgets.QWidget):
    """Time and memory of the trace against fused SDPA as tokens grow (see module docstring)."""

    finished = QtCore.Signal(str)      # the run's outcome, after the view is updated
    progressed = QtCore.Signal(int, int, str)  # sizes done, sizes in all, what is measured now

    def __init__(self, runner, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("costView")
        self.setWindowTitle("Cost of attention")
        self.runner = runner
        self.rows: list[CostRow] = []
        self.worker = TaskRunner(cost_work, "cost", thread_per_task=True, parent=self)
        self.worker.partial.connect(self._on_row)
        self.worker.progress.connect(lambda p: self._on_progress(*p))
        self.worker.done.connect(self._on_done)

        s = runner.settings
        self.run_button = QtWidgets.QPushButton("Run", objectName="costRun")
        self.run_button.setToolTip("Measure every size in the list (a few minutes at 4096 tokens on a CPU)")
        self.cancel_button = QtWidgets.QPushButton("Cancel", objectName="costCancel", enabled=False)
        self.export_button = QtWidgets.QPushButton("Export CSV…", objectName="costExport", enabled=False)
        self.progress = QtWidgets.QProgressBar(objectName="costProgress")
        self.progress.setRange(0, len(s.tokens))
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m sizes")
        self.status = QtWidgets.QLabel(objectName="costStatus")
        self.status.setText(f"{s.device} · d {s.d_model} · {s.num_heads} heads · tokens "
                            f"{', '.join(map(str, s.tokens))} · median of {s.repeats}")
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self._ask_export)
        bar = QtWidgets.QHBoxLayout()
        for w in (self.run_button, self.cancel_button, self.progress, self.export_button):
            bar.addWidget(w)

        self.plots, (self.time_plot, self.memory_plot) = side_by_side(
            ["time (ms)", "peak memory (MiB)"], "tokens T", log_y=True)
        for plot in (self.time_plot, self.memory_plot):
            plot.addLegend(offset=(8, 8), labelTextSize="8pt")
            # one labelled tick per measured size (the log axis' own minor labels pile up)
            plot.getAxis("bottom").setTicks([[(float(np.log10(t)), str(t)) for t in s.tokens], []])
        self.curves = {
            "trace_ms": self.time_plot.plot([], [], pen=TRACE_PEN, symbol="o", symbolSize=6,
                                            symbolBrush="#1f77b4", name="full trace"),
            "fused_ms": self.time_plot.plot([], [], pen=FUSED_PEN, symbol="s", symbolSize=6,
                                            symbolBrush="#ff7f0e", name="fused SDPA"),
            "time_ref": self.time_plot.plot([], [], pen=REF_PEN, name="∝ T²"),
            "trace_peak": self.memory_plot.plot([], [], pen=TRACE_PEN, symbol="o", symbolSize=6,
                                                symbolBrush="#1f77b4", name="full trace"),
            "fused_peak": self.memory_plot.plot([], [], pen=FUSED_PEN, symbol="s", symbolSize=6,
                                                symbolBrush="#ff7f0e", name="fused SDPA"),
            "kept": self.memory_plot.plot([], [], pen=KEPT_PEN, name="T×T kept by trace"),
            "memory_ref": self.memory_plot.plot([], [], pen=REF_PEN, name="∝ T²"),
        }
        self.plots.setMinimumSize(360, 200)

        self.table = QtWidgets.QTableWidget(0, len(COLUMNS), objectName="costTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.method = QtWidgets.QLabel(objectName="costMethod")
        self.method.setWordWrap(True)
        self.explain = QtWidgets.QLabel(FLASH_TEXT, objectName="costExplain")
        self.explain.setWordWrap(True)
        self.explain.setTextFormat(QtCore.Qt.TextFormat.RichText)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.plots)
        lower = QtWidgets.QWidget()
        lower_layout = QtWidgets.QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.table, 1)
        lower_layout.addWidget(self.method)
        lower_layout.addWidget(self.explain)
        split.addWidget(lower)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)

    # ---- running ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.is_running():
            return
        self.rows = []
        self.table.setRowCount(0)
        self._redraw()
        self.progress.setValue(0)
        self._set_running(True)
        self.worker.submit(self.runner)

    def cancel(self) -> None:
        if self.is_running():
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling after the current run…")

    def is_running(self) -> bool:
        return self.worker.busy()

    def wait(self, ms: int = 600000) -> bool:
        """Block until the worker has stopped (tests, closing)."""
        return self.worker.wait(ms)

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(not running and bool(self.rows))

    def _on_progress(self, done: int, total: int, text: str) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.status.setText(f"measuring: {text}" if done < total else "measured")
        self.progressed.emit(done, total, text)

    def _on_row(self, row: CostRow) -> None:
        self.rows.append(row)
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, text in enumerate(row_cells(row)):
            item = QtWidgets.QTableWidgetItem(text)
            if c < len(COLUMNS) - 1:
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(r, c, item)
        self.method.setText(f"Peak memory: {row.memory_method}, above what was in use before each run. "
                            f"Guard estimate: core.memory's figure for the full trace (kept intermediates "
                            f"and the largest step's temporaries).")
        self._redraw()

    def _on_done(self, outcome: str) -> None:
        self._set_running(False)
        if outcome == "finished":
            self.status.setText(f"measured {_sizes(len(self.rows))}")
        elif outcome == "cancelled":
            self.status.setText(f"cancelled after {_sizes(len(self.rows))}")
        else:
            self.status.setText(outcome)
        self.finished.emit(outcome)

    # ---- plots -------------------------------------------------------------------------------
    def _redraw(self) -> None:
        def series(attr, scale=1.0):
            pts = [(r.tokens, getattr(r, attr) * scale) for r in self.rows if getattr(r, attr)]
            return (np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float))

        mib = 1 / 2**20
        data = {"trace_ms": series("trace_ms"), "fused_ms": series("fused_ms"),
                "trace_peak": series("trace_peak_bytes", mib), "fused_peak": series("fused_peak_bytes", mib),
                "kept": series("tt_kept_bytes", mib)}
        for name, (x, y) in data.items():
            self.curves[name].setData(x, y)
        # T² through the trace's largest measured point: on log-log axes a line of slope 2
        for ref, (x, y) in (("time_ref", data["trace_ms"]), ("memory_ref", data["trace_peak"])):
            if len(x):
                self.curves[ref].setData(x, y[-1] * (x / x[-1]) ** 2)
            else:
                self.curves[ref].setData([], [])

    # ---- export ------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        """Write the measured rows as CSV (atomic); raises core.export.ExportError with a message."""
        from core.export import write_text_atomic
        write_text_atomic(path, rows_csv(self.rows))

    def _ask_export(self) -> None:
        from core.export import ExportError
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export the cost table", "cost.csv", "CSV (*.csv)")
        if not path:
            return
        try:
            self.export_csv(path)
        except ExportError as exc:
            QtWidgets.QMessageBox.warning(self, "Export CSV", str(exc))
            return
        self.status.setText(f"saved {path}")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.is_running():
            self.worker.cancel()
            self.worker.wait()
        super().closeEvent(event)
