"""Stages 6–8's controls, one row above the steps while one of their steps is on screen: the
options of gui.external_stage.DecodeOptions / TiledOptions / RopeOptions, the prompt (the book's
sentence or the main text field's: text, embeddings, d_in, seed) and the pointer (decode: which
generated token the steps show; tiled: which visited tile, in the kernel's order; rope: which
position the explanation reads). Under the decode bar, for GQA/MQA/SWA, a legend line: which
query heads share which K/V head, in the colours of the maps' titles (gui.decode_model)."""
from __future__ import annotations

from PySide6 import QtCore, QtWidgets

BASES = ("10000", "500000", "1000000")


class _Bar(QtWidgets.QWidget):
    pointer_name = "pos"

    def __init__(self, controller, title: str, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.model = controller.model
        self.stage = controller.stage
        self.setObjectName(f"{self.stage}Bar")
        self.outer = QtWidgets.QVBoxLayout(self)
        self.outer.setContentsMargins(6, 2, 6, 2)
        self.outer.setSpacing(0)
        self.row = QtWidgets.QHBoxLayout()
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.setSpacing(4)
        self.outer.addLayout(self.row)
        self.row.addWidget(QtWidgets.QLabel(f"<b>{title}</b>"))
        self.controls: list[QtWidgets.QWidget] = []

    def _spin(self, field: str, label: str, lo: int, hi: int, tip: str) -> QtWidgets.QSpinBox:
        spin = QtWidgets.QSpinBox(objectName=f"{self.stage}_{field}")
        spin.setRange(lo, hi)
        spin.setToolTip(tip)
        spin.setKeyboardTracking(False)              # typed digits apply on Enter
        lab = QtWidgets.QLabel(label)
        lab.setToolTip(tip)
        self.row.addWidget(lab)
        self.row.addWidget(spin)
        spin.valueChanged.connect(lambda v: self.controller.set_options(**{field: int(v)}))
        self.controls.append(spin)
        return spin

    def _finish(self, tip: str) -> None:
        self.prompt = QtWidgets.QComboBox(objectName=f"{self.stage}Prompt")
        self.prompt.addItem("book sentence", "book")
        self.prompt.addItem("main text field", "main")
        self.prompt.setToolTip("The prompt: the book's “Your journey starts with one step” or the text (and "
                               "embeddings, d_in, seed) of the main text field")
        self.prompt.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.prompt.setMinimumContentsLength(12)     # a long main text must not widen the window
        self.row.addWidget(self.prompt)
        self.controls.append(self.prompt)
        self.prompt.currentIndexChanged.connect(
            lambda i: self.controller.set_options(prompt=self.prompt.itemData(i)))
        self.model.config_changed.connect(self._show_main_text)
        self._show_main_text(self.model.config)
        self.row.addSpacing(8)
        self.pointer = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, objectName=f"{self.stage}Pointer")
        self.pointer.setMinimumWidth(80)
        self.pointer.setToolTip(tip)
        self.pointer_label = QtWidgets.QLabel(objectName=f"{self.stage}PointerLabel")
        self.row.addWidget(QtWidgets.QLabel(self.pointer_name))
        self.row.addWidget(self.pointer, 1)
        self.row.addWidget(self.pointer_label)
        self.pointer.valueChanged.connect(lambda v: self.model.set_external_pointer(self.stage, v))
        self.controller.options_changed.connect(self._show)
        self.model.external_changed.connect(lambda s: self._show_pointer() if s == self.stage else None)
        self._show(self.controller.options)
        self._show_pointer()

    def _show_main_text(self, config) -> None:
        text = getattr(config, "text", "") or ""
        short = text if len(text) <= 24 else text[:23] + "…"
        self.prompt.setItemText(1, f"main text: “{short}”" if short else "main text field")

    def _show(self, options) -> None:
        for w in self.controls:
            w.blockSignals(True)
        self.prompt.setCurrentIndex(max(0, self.prompt.findData(options.prompt)))
        self.show_options(options)
        for w in self.controls:
            w.blockSignals(False)

    def _show_pointer(self) -> None:
        state = self.model.external[self.stage]
        self.pointer.blockSignals(True)
        if state.trace is None:
            self.pointer.setEnabled(False)
            self.pointer_label.setText("")
        else:
            from gui.external_model import pointer_range
            lo, hi = pointer_range(self.stage, state.trace)
            self.pointer.setEnabled(hi > lo)
            self.pointer.setRange(lo, hi)
            self.pointer.setValue(state.pointer)
            self.pointer_label.setText(self.pointer_text(state))
        self.pointer.blockSignals(False)

    def pointer_text(self, state) -> str:
        return f"{state.pointer} ({state.trace.labels[state.pointer][:12]})"


DECODE_TIPS = {
    "variant": "mha: the chapter's MultiHeadAttention with a KV cache; gqa: query heads share K/V heads "
               "(repeat_interleave); mqa: one K/V head; mla: a latent c_kv is cached; swa: a sliding window",
    "kv_groups": "K/V heads (num_kv_groups; gqa and swa): the number of query heads must be a multiple of it",
    "latent": "MLA's latent width (latent_dim): what is cached per token instead of K and V",
    "window": "SWA's window W (sliding_window_size): a query reads the last W keys only",
    "new_tokens": "How many tokens are appended one at a time after the prompt",
    "num_heads": "Query heads", "d_out": "All heads together (d_out = heads × head_dim)"}


class DecodeBar(_Bar):
    pointer_name = "ptr"

    def __init__(self, controller, parent=None):
        super().__init__(controller, "Decode", parent)
        self.variant = QtWidgets.QComboBox(objectName="decodeVariant")
        for key in ("mha", "gqa", "mqa", "mla", "swa"):
            self.variant.addItem(key.upper(), key)
        self.variant.setToolTip(DECODE_TIPS["variant"])
        self.row.addWidget(self.variant)
        self.controls.append(self.variant)
        self.variant.currentIndexChanged.connect(
            lambda i: self.controller.set_options(variant=self.variant.itemData(i)))
        self.spins = {f: self._spin(f, label, lo, hi, DECODE_TIPS[f]) for f, label, lo, hi in (
            ("num_heads", "Heads", 1, 16), ("d_out", "d_out", 1, 64), ("kv_groups", "K/V heads", 1, 16),
            ("latent", "Latent", 1, 64), ("window", "Window", 1, 64), ("new_tokens", "New", 1, 32))}
        self.row.addWidget(QtWidgets.QLabel("Prompt"))
        self.legend = QtWidgets.QLabel(objectName="decodeGroupLegend")     # GQA/MQA/SWA's groups
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.legend.setToolTip("Query heads that read the same K/V head (repeat_interleave) share its colour "
                               "in every decode step's map titles")
        self.legend.setVisible(False)
        self.outer.addWidget(self.legend)
        self._finish("The position pointer (ptr_current_pos): which generated token the steps show")
        self.model.external_changed.connect(lambda s: self._show_legend() if s == self.stage else None)
        self._show_legend()

    def show_options(self, o) -> None:
        self.variant.setCurrentIndex(max(0, self.variant.findData(o.variant)))
        for f, spin in self.spins.items():
            spin.setValue(getattr(o, f))
        self.spins["kv_groups"].setEnabled(o.variant in ("gqa", "swa"))
        self.spins["latent"].setEnabled(o.variant == "mla")
        self.spins["window"].setEnabled(o.variant == "swa")

    def legend_items(self) -> list[tuple[str, str]]:
        """(colour, text) per K/V head: "query heads 0–3 share K/V head 0" (empty where none is shared)."""
        from gui.decode_model import group_legend
        trace = self.model.external[self.stage].trace
        return group_legend(trace.config) if trace is not None else []

    def _show_legend(self) -> None:
        from html import escape
        items = self.legend_items()
        self.legend.setVisible(bool(items))
        text = " · ".join(f"<span style='color:{c}'>■ {escape(t)}</span>" for c, t in items)
        if text != self.legend.text():
            self.legend.setText(text)


class TiledBar(_Bar):
    pointer_name = "tile"

    def __init__(self, controller, parent=None):
        super().__init__(controller, "Tiled", parent)
        self.spins = {f: self._spin(f, label, lo, hi, tip) for f, label, lo, hi, tip in (
            ("block_rows", "Block rows", 1, 64, "Br: queries per tile (1…64)"),
            ("block_cols", "cols", 1, 64, "Bc: keys per tile (1…64)"),
            ("head", "Head", 0, 15, "Which head of the chapter's MultiHeadAttention (d_out 16, 2 heads) is tiled"))}
        self.causal = QtWidgets.QCheckBox("causal", objectName="tiledCausal")
        self.causal.setToolTip("Mask the future: tiles wholly above the diagonal are skipped")
        self.form = QtWidgets.QComboBox(objectName="tiledForm")
        self.form.addItem("FA1", False)
        self.form.addItem("FA2", True)
        self.form.setToolTip("FA1: key blocks outermost, O normalised after every tile; FA2: query blocks "
                             "outermost, unscaled accumulator divided by l at the end")
        self.row.addWidget(self.causal)
        self.row.addWidget(self.form)
        self.controls += [self.causal, self.form]
        self.causal.toggled.connect(lambda on: self.controller.set_options(causal=bool(on)))
        self.form.currentIndexChanged.connect(lambda i: self.controller.set_options(fa2=bool(self.form.itemData(i))))
        self._finish("Which visited tile the steps show, in the kernel's order")

    def show_options(self, o) -> None:
        for f, spin in self.spins.items():
            spin.setValue(getattr(o, f))
        self.causal.setChecked(o.causal)
        self.form.setCurrentIndex(1 if o.fa2 else 0)

    def pointer_text(self, state) -> str:
        tile = [int(v) for v in state.view["tiled_step", "tile"].numpy().reshape(-1)]
        return f"{state.pointer + 1}/{len(state.trace.steps)} (q{tile[1]}·k{tile[2]})"


class RopeBar(_Bar):
    def __init__(self, controller, parent=None):
        super().__init__(controller, "RoPE", parent)
        self.base = QtWidgets.QComboBox(objectName="ropeBase")
        self.base.setEditable(True)
        self.base.addItems(BASES)
        self.base.setToolTip("θ_i = base^(−2i/d): 10000 (the original, GPT-NeoX, Llama 2), 500000 (Llama 3), "
                             "1000000 (Qwen3); type another and press Enter")
        self.form = QtWidgets.QComboBox(objectName="ropeForm")
        self.form.addItem("split halves", "split")
        self.form.addItem("interleaved", "interleaved")
        self.form.setToolTip("split: pair i = (x_i, x_{i+d/2}) (the book's rotate_half); interleaved: (x_2i, x_2i+1)")
        self.row.addWidget(QtWidgets.QLabel("Base"))
        self.row.addWidget(self.base)
        self.row.addWidget(self.form)
        self.controls += [self.base, self.form]
        self.shift = self._spin("shift", "Shift", 0, 1_000_000, "The shifted-positions check: every position moved by s")
        self.head = self._spin("head", "Head", 0, 15, "Which head of the chapter's MultiHeadAttention is rotated")
        self.base.lineEdit().editingFinished.connect(self._base_typed)
        self.base.activated.connect(lambda _i: self._base_typed())
        self.form.currentIndexChanged.connect(lambda i: self.controller.set_options(form=self.form.itemData(i)))
        self._finish("Which position the explanation reads (every position is drawn)")

    def _base_typed(self) -> None:
        text = self.base.currentText().strip().replace(",", "").replace("_", "")
        try:
            value = float(text)
        except ValueError:
            self.controller.error.emit(f"base: must be a number above 1 and at most 1e+12, got {text!r}")
            self._show(self.controller.options)
            return
        if value != self.controller.options.base:
            self.controller.set_options(base=value)

    def show_options(self, o) -> None:
        self.base.setEditText(f"{o.base:g}" if o.base < 1e6 else f"{o.base:.0f}")
        self.form.setCurrentIndex(max(0, self.form.findData(o.form)))
        self.shift.setValue(o.shift)
        self.head.setValue(o.head)


BARS = {"decode": DecodeBar, "tiled": TiledBar, "rope": RopeBar}
