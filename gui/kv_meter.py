"""View → KV-cache memory meter: what the cache of each attention variant costs, side by side.

A table (one row per variant at the context length: what one token adds per layer, bytes per
token, tokens held, the total and the saving against MHA) and a plot of the total against the
context length, all from core.kv_memory (the book's formula; torch-free). The defaults are the
book's reference model (4096-dim, 32 heads, 32 layers, 32,768 tokens, bf16): MHA 17.18 GB,
GQA with 8 K/V heads 4.29 GB. A bad size (heads not divisible by the K/V heads…) is one line
under the fields; the table and plot keep the last good numbers.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from core import kv_memory
from gui.plots import side_by_side

COLOURS = {"mha": "#1f77b4", "gqa": "#ff7f0e", "mqa": "#2ca02c", "mla": "#d62728", "swa": "#9467bd",
           "swa+gqa": "#8c564b"}
FIELDS = (("emb_dim", "emb_dim", 1, 65536), ("num_heads", "heads", 1, 1024), ("num_layers", "layers", 1, 1024),
          ("num_kv_groups", "K/V heads", 1, 1024), ("latent_dim", "latent", 1, 65536),
          ("sliding_window_size", "window", 1, 10**6), ("context_length", "context", 1, 10**7))
COLUMNS = ("variant", "cached per token and layer", "bytes / token", "tokens held", "total", "vs MHA")


class KVMeter(QtWidgets.QDialog):
    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("kvMeter")
        self.setWindowTitle("KV-cache memory meter")
        self.size_ = kv_memory.ModelSize()
        self.spins: dict[str, QtWidgets.QSpinBox] = {}
        form = QtWidgets.QHBoxLayout()
        for field, label, lo, hi in FIELDS:
            spin = QtWidgets.QSpinBox(objectName=f"kv_{field}")
            spin.setRange(lo, hi)
            spin.setGroupSeparatorShown(True)
            spin.setKeyboardTracking(False)
            value = getattr(self.size_, field)
            spin.setValue(self.size_.latent if value is None else value)
            spin.valueChanged.connect(self.recompute)
            self.spins[field] = spin
            form.addWidget(QtWidgets.QLabel(label))
            form.addWidget(spin)
        self.dtype = QtWidgets.QComboBox(objectName="kv_dtype")
        self.dtype.addItems(["bf16", "fp16", "fp32", "fp8"])
        self.dtype.currentTextChanged.connect(self.recompute)
        form.addWidget(QtWidgets.QLabel("dtype"))
        form.addWidget(self.dtype)
        form.addStretch(1)
        self.book = QtWidgets.QPushButton("Book reference", objectName="kvBook")
        self.book.setToolTip("The book's reference model: 4096-dim, 32 heads, 32 layers, 8 K/V heads, 32k tokens, bf16")
        self.book.clicked.connect(self.use_book)
        form.addWidget(self.book)
        self.message = QtWidgets.QLabel(objectName="kvMessage")
        self.message.setStyleSheet("color: #b00020")
        self.summary = QtWidgets.QLabel(objectName="kvSummary")
        self.summary.setWordWrap(True)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS), objectName="kvTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.plot_widget, (self.plot,) = side_by_side(["KV cache (GB) against the context length"],
                                                      "context length (tokens)", log_y=False)
        self.plot.setLogMode(x=False, y=False)      # linear: the cache grows linearly with the context
        self.plot.setLabel("left", "GB")
        self.plot.addLegend(offset=(10, 10))
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.message)
        lay.addWidget(self.summary)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.plot_widget)
        split.setSizes([210, 330])
        lay.addWidget(split, 1)
        self.resize(1000, 640)
        self.recompute()

    def use_book(self) -> None:
        book = kv_memory.ModelSize()
        for field, spin in self.spins.items():
            spin.blockSignals(True)
            value = getattr(book, field)
            spin.setValue(book.latent if value is None else value)
            spin.blockSignals(False)
        self.dtype.blockSignals(True)
        self.dtype.setCurrentText(book.dtype)
        self.dtype.blockSignals(False)
        self.recompute()

    def _size(self) -> kv_memory.ModelSize:
        values = {f: s.value() for f, s in self.spins.items()}
        return kv_memory.ModelSize(**values, dtype=self.dtype.currentText())

    def recompute(self, *_args) -> None:
        try:
            size = self._size()
        except kv_memory.MeterError as exc:
            self.message.setText(f"{exc.option.lstrip('-')}: {exc.message}")     # the last good numbers stay
            return
        self.message.setText("")
        self.size_ = size
        rows = kv_memory.table(size)
        mha = rows[0].total_bytes
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            cells = (row.variant, row.cached, f"{row.bytes_per_token:,}", f"{row.cached_tokens:,}",
                     kv_memory.format_gb(row.total_bytes), f"{mha / row.total_bytes:,.2f}x")
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if c >= 2:
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        swa, full = size.layers_split()
        self.summary.setText(
            f"batch {size.batch} · {size.dtype} ({size.bytes_per_elem} bytes/element) · {size.num_layers} layers · "
            f"head_dim {size.dim} · bytes = batch × context × head_dim × K/V heads × 2 × bytes/element × layers "
            f"(MLA: the latent, no × 2; SWA: the last {size.sliding_window_size:,} tokens). GB = 10⁹ bytes.")
        contexts = kv_memory.sweep_contexts(size)
        totals = kv_memory.series(size, contexts)
        self.plot.clear()
        for variant, values in totals.items():
            self.plot.plot(contexts, [v / 1e9 for v in values], name=variant, symbol="o", symbolSize=5,
                           pen=pg.mkPen(COLOURS[variant], width=2), symbolBrush=COLOURS[variant],
                           symbolPen=None)

    def table_text(self) -> list[list[str]]:
        """The table's cells (tests, the report)."""
        return [[self.table.item(r, c).text() for c in range(self.table.columnCount())]
                for r in range(self.table.rowCount())]
