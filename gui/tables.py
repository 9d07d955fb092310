"""Editable inputs: the embeddings X and W_query/W_key/W_value as tables.

Change a value and every step updates (the controller recomputes off the UI thread); add or
remove tokens; reset to the preset; import/export the embeddings as CSV. A cell that is not a
number is refused where it was typed: the cell gets its old value back, a message says why,
and nothing else changes (no recompute). The tables show the trace on screen, so after an
edit they show exactly what the core computed from.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from gui.refresh import RefreshWhenShown
from gui.tasks import TaskRunner

ROLE_VALUE = QtCore.Qt.ItemDataRole.UserRole
MAX_EDIT_CELLS = 20_000       # larger matrices are not put in a table (import/export the CSV instead)
WEIGHTS = ("W_query", "W_key", "W_value")


def parse_number(text: str) -> float | None:
    """A finite float from a cell's text, or None (not a number)."""
    try:
        v = float(text.strip().replace("−", "-"))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def embeddings_csv(tokens, labels, array) -> str:
    """'token, in0, …' header, then one row per token; repr floats read back exactly."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["token", *labels])
    for tok, row in zip(tokens, np.asarray(array)):
        w.writerow([tok, *(repr(float(v)) for v in row)])
    return buf.getvalue()


def read_embeddings(path: str, _task) -> tuple:
    """Read embeddings from a CSV file (on a reader thread): (path, Inputs or None, error)."""
    from core.inputs import load_embeddings_csv
    try:
        return path, load_embeddings_csv(path), ""
    except ValueError as exc:
        return path, None, str(exc)
    except Exception as exc:      # never a traceback for the learner
        return path, None, f"{path} cannot be read as embeddings ({type(exc).__name__}: {exc})"


class InputsEditor(RefreshWhenShown, QtWidgets.QWidget):

    needs = ("simplified",)   # read by refresh() (a partial trace may lack them)
    message = QtCore.Signal(str)      # status-bar text (refusals, imports, exports)
    imported = QtCore.Signal(str)     # an import finished: "" when applied, else why not

    def __init__(self, controller, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("inputsEditor")
        self.controller = controller
        self._filling = False
        self._stale = True
        self.too_large: set[str] = set()      # tables left empty: the matrix is too large to edit here
        # CSV imports, read off the UI thread; the latest wins (an older one is dropped)
        self._reader = TaskRunner(read_embeddings, "csv-reader", thread_per_task=True, drop_stale=True, parent=self)
        self._reader.done.connect(self._on_read)
        self.tabs = QtWidgets.QTabWidget(objectName="inputsTabs")
        self.tabs.setStyleSheet("QTabBar::tab { padding: 3px 10px 5px 10px; }")   # room for the _ of W_query
        self.embeddings = self._table("embeddingsTable",
                                      "The token embeddings X: double-click a value to change it; "
                                      "the first column is the token")
        self.tabs.addTab(self.embeddings, "Embeddings X")
        self.weights: dict[str, QtWidgets.QTableWidget] = {}
        for name in WEIGHTS:
            t = self._table(f"{name}Table", f"{name} (d_in × d_out) of the trainable and causal stages: "
                                            "double-click a value to change it")
            self.weights[name] = t
            self.tabs.addTab(t, name)
        self.note = QtWidgets.QLabel(objectName="inputsNote")
        self.note.setWordWrap(True)
        buttons = QtWidgets.QHBoxLayout()
        self.buttons = {}
        for key, text, tip, slot in (
                ("add", "Add token", "Append a token (a zero embedding) at the end", self.add_token),
                ("remove", "Remove token", "Remove the selected token (the last one if none is selected)",
                 self.remove_token),
                ("reset", "Reset to preset", "Drop every edit: the preset's embeddings and drawn weights",
                 self.reset),
                ("import", "Import CSV…", "Read embeddings from a CSV file: token, v1, v2, …", self.import_csv),
                ("export", "Export CSV…", "Write the embeddings to a CSV file (reads back exactly)",
                 self.export_csv)):
            b = QtWidgets.QPushButton(text, objectName=f"inputs_{key}")
            b.setToolTip(tip)
            b.clicked.connect(lambda _checked=False, slot=slot: slot())
            buttons.addWidget(b)
            self.buttons[key] = b
        buttons.addStretch(1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(buttons)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.note)
        self.watch_trace(controller.model)        # the tables fill now if on screen, else when shown
        controller.error.connect(self._on_error)

    def _table(self, name: str, tip: str) -> QtWidgets.QTableWidget:
        t = QtWidgets.QTableWidget(objectName=name)
        t.setToolTip(tip)
        t.itemChanged.connect(lambda item, t=t: self._on_changed(t, item))
        t.verticalHeader().setDefaultSectionSize(t.fontMetrics().height() + 6)
        t.horizontalHeader().setMinimumSectionSize(t.fontMetrics().horizontalAdvance("-0.000000") + 12)
        t.setMinimumHeight(90)
        from gui.keys import keep_navigation_keys
        keep_navigation_keys(t)              # arrow keys move the cell cursor, not the step
        return t

    # ---- showing the trace -------------------------------------------------------------------
    def refresh(self) -> None:
        trace = self.controller.model.chapter_trace()
        if trace is None or not self._ready():
            return
        self._stale = False
        self.too_large = set()
        self._filling = True
        try:
            x = trace["simplified", "inputs"]
            self._fill(self.embeddings, trace.inputs.array, x.labels[0], ("token",) + tuple(x.labels[1]),
                       tokens=trace.tokens)
            for name, t in self.weights.items():
                if ("trainable", name) in trace:
                    w = trace["trainable", name]
                    self._fill(t, w.numpy(), w.labels[0], w.labels[1])
        finally:
            self._filling = False
        mode = "the book section's" if self.controller.mode == "book" else "the custom settings'"
        edited = []
        if self.controller.inputs is not None:
            edited.append("embeddings")
        edited += sorted(self.controller.weights)
        self.note.setText((f"Showing {mode} inputs." if not edited else "Edited: " + ", ".join(edited) + ".")
                          + " W_query/W_key/W_value feed the trainable and causal stages "
                            "(the multi-head stage draws its own).")
        self.note.setStyleSheet("")

    def _fill(self, t: QtWidgets.QTableWidget, arr, row_labels, col_labels, tokens=None) -> None:
        arr = np.asarray(arr)
        offset = 1 if tokens is not None else 0
        if arr.size > MAX_EDIT_CELLS:           # thousands of rows: no table of QTableWidgetItems
            self.too_large.add(t.objectName())
            t.setRowCount(0)
            t.setColumnCount(1)
            t.setHorizontalHeaderLabels([f"{arr.shape[0]} × {arr.shape[1]}: too large to edit here "
                                         f"(more than {MAX_EDIT_CELLS:,} values); use Import/Export CSV"])
            t.horizontalHeader().setStretchLastSection(True)
            return
        t.horizontalHeader().setStretchLastSection(False)
        t.setRowCount(arr.shape[0])
        t.setColumnCount(arr.shape[1] + offset)
        t.setHorizontalHeaderLabels([str(c) for c in col_labels])
        t.setVerticalHeaderLabels([str(i + 1) for i in range(arr.shape[0])] if tokens is not None
                                  else [str(r) for r in row_labels])
        for i in range(arr.shape[0]):
            if tokens is not None:
                it = QtWidgets.QTableWidgetItem(str(tokens[i]))
                it.setData(ROLE_VALUE, str(tokens[i]))
                t.setItem(i, 0, it)
            for j in range(arr.shape[1]):
                v = float(arr[i, j])
                it = QtWidgets.QTableWidgetItem(f"{v:.6g}")
                it.setData(ROLE_VALUE, v)
                it.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                t.setItem(i, j + offset, it)
        t.resizeColumnsToContents()

    # ---- editing -----------------------------------------------------------------------------
    def _on_changed(self, t: QtWidgets.QTableWidget, item: QtWidgets.QTableWidgetItem) -> None:
        if self._filling:
            return
        old = item.data(ROLE_VALUE)
        text = item.text()
        is_token = t is self.embeddings and item.column() == 0
        if is_token:
            if not text.strip():
                self._refuse(t, item, old, "a token needs a name")
                return
            from core.tokens import label_problem      # the rules of CSV and lesson labels
            problem = label_problem(text.strip())
            if problem:
                self._refuse(t, item, old, f"the token {problem}")
                return
            item.setData(ROLE_VALUE, text.strip())
        else:
            v = parse_number(text)
            if v is None:
                self._refuse(t, item, old, f"{text!r} is not a number")
                return
            from core.config import MAX_ABS_EMBEDDING
            if abs(v) > MAX_ABS_EMBEDDING:          # the trace would refuse it: refuse it here
                self._refuse(t, item, old, f"{text.strip()} is outside ±{MAX_ABS_EMBEDDING:g}")
                return
            with QtCore.QSignalBlocker(t):
                item.setData(ROLE_VALUE, v)
        self._submit(t)

    def _refuse(self, t, item, old, why: str) -> None:
        """Put the old value back (no recompute) and say why."""
        where = self._where(t, item)
        with QtCore.QSignalBlocker(t):
            item.setText(str(old) if isinstance(old, str) else f"{old:.6g}")
        msg = f"Refused: {why} ({where} keeps {old if isinstance(old, str) else f'{old:.6g}'})"
        self.note.setText(msg)
        self.note.setStyleSheet("color: #b00020;")
        QtWidgets.QToolTip.showText(QtGui.QCursor.pos(), msg, t)
        self.message.emit(msg)

    def _where(self, t, item) -> str:
        if t is self.embeddings:
            tok = self.embeddings.item(item.row(), 0)
            col = self.embeddings.horizontalHeaderItem(item.column())
            return f"x[{tok.text() if tok else item.row()}, {col.text() if col else item.column()}]"
        name = next(n for n, w in self.weights.items() if w is t)
        return f"{name}[{item.row()}, {item.column()}]"

    def table_values(self, t: QtWidgets.QTableWidget) -> np.ndarray:
        offset = 1 if t is self.embeddings else 0
        return np.array([[float(t.item(i, j).data(ROLE_VALUE)) for j in range(offset, t.columnCount())]
                         for i in range(t.rowCount())], dtype=np.float64)

    def current_inputs(self):
        from core.inputs import Inputs
        if self._stale or "embeddingsTable" in self.too_large:    # the table is not filled: the trace's
            return self.controller.model.inputs
        t = self.embeddings
        tokens = [str(t.item(i, 0).data(ROLE_VALUE)) for i in range(t.rowCount())]
        return Inputs(tokens, self.table_values(t).reshape(len(tokens), max(t.columnCount() - 1, 0)))

    def _submit(self, t: QtWidgets.QTableWidget) -> None:
        if t is self.embeddings:
            self.controller.set_edits(inputs=self.current_inputs())
        else:
            name = next(n for n, w in self.weights.items() if w is t)
            self.controller.set_edits(weights={name: self.table_values(t)})

    def add_token(self, token: str | None = None) -> None:
        inp = self.current_inputs()
        if inp is None:                     # before the first trace: nothing to add to yet
            return
        tok = token or f"token{len(inp.tokens) + 1}"
        arr = np.vstack([inp.array, np.zeros((1, inp.width))])
        from core.inputs import Inputs
        self.controller.set_edits(inputs=Inputs(list(inp.tokens) + [tok], arr))

    def remove_token(self, row: int | None = None) -> None:
        inp = self.current_inputs()
        if inp is None:
            return
        if len(inp.tokens) <= 1:
            self.message.emit("The inputs need at least one token")
            return
        if row is None:
            rows = sorted({i.row() for i in self.embeddings.selectedIndexes()})
            row = rows[-1] if rows else len(inp.tokens) - 1
        keep = [i for i in range(len(inp.tokens)) if i != row]
        from core.inputs import Inputs
        self.controller.set_edits(inputs=Inputs([inp.tokens[i] for i in keep], inp.array[keep]))

    def reset(self) -> None:
        self.controller.reset_edits()
        self.message.emit("Inputs reset to the preset")

    def import_csv(self, path: str | None = None) -> None:
        """Read embeddings from a CSV file on a reader thread (a FIFO or a 64 MiB file never blocks
        the window); ``imported`` says when it is applied or refused. The latest import wins."""
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Import embeddings", "", "CSV files (*.csv);;All files (*)")
            if not path:
                return
        self.note.setText(f"Reading {Path(path).name}…")
        self.note.setStyleSheet("")
        self._reader.submit(str(path))

    def _on_read(self, outcome: tuple) -> None:
        path, inp, error = outcome
        if inp is None:
            self.message.emit(f"Import failed: {error}")
            self.note.setText(f"Import failed: {error}")
            self.note.setStyleSheet("color: #b00020;")
            self.imported.emit(error)
            return
        self.note.setText("")
        d_in = self.controller.shown_config().get("d_in")
        if inp.width == d_in:
            self.controller.set_edits(inputs=inp)
        else:                         # another width: the CSV becomes the embeddings source
            self.controller.set_params(embeddings=str(path), d_in=inp.width)
        self.message.emit(f"Imported {len(inp.tokens)} tokens × {inp.width} from {Path(path).name}")
        self.imported.emit("")

    def export_csv(self, path: str | None = None) -> str:
        # any trace on screen that holds the inputs (a partial one may not have the simplified stage yet)
        trace = next((t for t in self.controller.model.traces.values() if "simplified" in t.stages), None)
        if trace is None:
            self.message.emit("The inputs are still being computed; export them in a moment")
            return ""
        if path is None:
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export embeddings", "inputs.csv", "CSV files (*.csv)")
            if not path:
                return ""
        x = trace["simplified", "inputs"]
        from core.export import ExportError, write_text_atomic     # temporary name, then rename
        try:
            write_text_atomic(path, embeddings_csv(trace.tokens, x.labels[1], trace.inputs.array))
        except ExportError as exc:
            msg = f"Export failed: {exc}"
        except OSError as exc:
            msg = f"Export failed: {exc.strerror or exc}"
        else:
            msg = f"Wrote {len(trace.tokens)} embeddings to {path}"
        self.message.emit(msg)
        return msg

    def _on_error(self, field: str, message: str) -> None:
        if field in ("embeddings", *WEIGHTS) or not field:
            self._on_trace()              # the tables show the trace on screen again
        if field in ("embeddings", "d_in", *WEIGHTS) or "inputs" in message or not field:
            self.note.setText(f"Not applied: {field + ': ' if field else ''}{message}")
            self.note.setStyleSheet("color: #b00020;")
