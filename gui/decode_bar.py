"""Stage 6's controls, one row above the steps while a decode step is on screen: the variant,
heads, d_out, K/V heads (gqa, swa), latent (mla), window (swa), new tokens, the prompt (the
book's sentence or the main text field's) and the position pointer (which generated token the
steps show: a slider, the view model's ``decode_position``). Under it, for GQA/MQA/SWA, a legend
line: which query heads share which K/V head, in the colours of the maps' titles
(gui.decode_model.GROUP_COLOURS)."""
from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from gui.decode_controller import Options

VARIANTS = (("mha", "MHA"), ("gqa", "GQA"), ("mqa", "MQA"), ("mla", "MLA"), ("swa", "SWA"))
TIPS = {"variant": "mha: the chapter's MultiHeadAttention with a KV cache; gqa: query heads share K/V heads "
                   "(repeat_interleave); mqa: one K/V head; mla: a latent c_kv is cached; swa: a sliding window",
        "kv_groups": "K/V heads (num_kv_groups; gqa and swa): the number of query heads must be a multiple of it",
        "latent": "MLA's latent width (latent_dim): what is cached per token instead of K and V",
        "window": "SWA's window W (sliding_window_size): a query reads the last W keys only",
        "new_tokens": "How many tokens are appended one at a time after the prompt",
        "num_heads": "Query heads", "d_out": "All heads together (d_out = heads × head_dim)"}


class DecodeBar(QtWidgets.QWidget):
    def __init__(self, decode, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("decodeBar")
        self.decode = decode
        self.model = decode.model
        self.variant = QtWidgets.QComboBox(objectName="decodeVariant")
        for key, text in VARIANTS:
            self.variant.addItem(text, key)
        self.variant.setToolTip(TIPS["variant"])
        self.spins: dict[str, QtWidgets.QSpinBox] = {}
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(6, 2, 6, 2)
        outer.setSpacing(0)
        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        outer.addLayout(row)
        # GQA/MQA/SWA: which query heads share which K/V head, in the colours of the maps' titles
        self.legend = QtWidgets.QLabel(objectName="decodeGroupLegend")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.legend.setToolTip("Query heads that read the same K/V head (repeat_interleave) share its colour "
                               "in every decode step's map titles")
        outer.addWidget(self.legend)
        self.legend.setVisible(False)
        row.addWidget(QtWidgets.QLabel("<b>Decode</b>"))
        row.addWidget(self.variant)
        for field, label, lo, hi in (("num_heads", "Heads", 1, 16), ("d_out", "d_out", 1, 64),
                                     ("kv_groups", "K/V heads", 1, 16), ("latent", "Latent", 1, 64),
                                     ("window", "Window", 1, 64), ("new_tokens", "New", 1, 32)):
            spin = QtWidgets.QSpinBox(objectName=f"decode_{field}")
            spin.setRange(lo, hi)
            spin.setToolTip(TIPS[field])
            spin.setKeyboardTracking(False)          # typed digits apply on Enter, not one by one
            self.spins[field] = spin
            lab = QtWidgets.QLabel(label)
            lab.setToolTip(TIPS[field])
            row.addWidget(lab)
            row.addWidget(spin)
            spin.valueChanged.connect(lambda v, f=field: self.decode.set_options(**{f: int(v)}))
        self.prompt = QtWidgets.QComboBox(objectName="decodePrompt")
        self.prompt.addItem("book sentence", "book")
        self.prompt.addItem("main text field", "main")
        self.prompt.setToolTip("The prompt: the book's “Your journey starts with one step” or the text (and "
                               "embeddings, d_in, seed) of the main text field (the chapter's steps' settings row)")
        self.prompt.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.prompt.setMinimumContentsLength(14)     # a long main text must not widen the window
        row.addWidget(QtWidgets.QLabel("Prompt"))
        row.addWidget(self.prompt)
        row.addSpacing(8)
        self.position = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, objectName="decodePosition")
        self.position.setMinimumWidth(80)
        self.position.setToolTip("The position pointer (ptr_current_pos): which generated token the steps show")
        self.position_label = QtWidgets.QLabel(objectName="decodePositionLabel")
        row.addWidget(QtWidgets.QLabel("ptr"))
        row.addWidget(self.position, 1)
        row.addWidget(self.position_label)
        self.variant.currentIndexChanged.connect(
            lambda i: self.decode.set_options(variant=self.variant.itemData(i)))
        self.prompt.currentIndexChanged.connect(lambda i: self.decode.set_options(prompt=self.prompt.itemData(i)))
        self.model.config_changed.connect(self._show_main_text)
        self._show_main_text(self.model.config)
        self.position.valueChanged.connect(self.model.set_decode_position)
        decode.options_changed.connect(self._show_options)
        self.model.decode_changed.connect(self._show_position)
        self.model.decode_changed.connect(self._show_legend)
        self._show_options(decode.options)
        self._show_position()
        self._show_legend()

    def _show_main_text(self, config) -> None:
        """The second item names the main text field's text (what that prompt is)."""
        text = getattr(config, "text", "") or ""
        short = text if len(text) <= 24 else text[:23] + "…"
        self.prompt.setItemText(1, f"main text: “{short}”" if short else "main text field")

    def _widgets(self):
        return [self.variant, self.prompt, *self.spins.values()]

    def _show_options(self, options: Options) -> None:
        for w in self._widgets():
            w.blockSignals(True)
        self.variant.setCurrentIndex(max(0, self.variant.findData(options.variant)))
        self.prompt.setCurrentIndex(max(0, self.prompt.findData(options.prompt)))
        for field, spin in self.spins.items():
            spin.setValue(getattr(options, field))
        v = options.variant
        self.spins["kv_groups"].setEnabled(v in ("gqa", "swa"))
        self.spins["latent"].setEnabled(v == "mla")
        self.spins["window"].setEnabled(v == "swa")
        for w in self._widgets():
            w.blockSignals(False)

    def _show_legend(self) -> None:
        """One line: "■ query heads 0–3 share K/V head 0 · ■ query heads 4–7 share K/V head 1" for
        the trace on screen (hidden where every query head has its own K/V head)."""
        from html import escape

        from gui.decode_model import group_legend
        trace = self.model.decode
        items = group_legend(trace.config) if trace is not None else []
        self.legend.setVisible(bool(items))
        text = " · ".join(f"<span style='color:{c}'>■ {escape(t)}</span>" for c, t in items)
        if text != self.legend.text():
            self.legend.setText(text)

    def legend_items(self) -> list[tuple[str, str]]:
        """(colour, text) per K/V head as the legend shows them (empty when hidden)."""
        from gui.decode_model import group_legend
        trace = self.model.decode
        return group_legend(trace.config) if trace is not None and self.legend.isVisibleTo(self) else []

    def _show_position(self) -> None:
        m = self.model
        self.position.blockSignals(True)
        if m.decode is None:
            self.position.setEnabled(False)
            self.position_label.setText("")
        else:
            positions = m.decode.positions
            self.position.setEnabled(len(positions) > 1)
            self.position.setRange(positions[0], positions[-1])
            self.position.setValue(m.decode_position)
            label = m.decode.labels[m.decode_position]
            self.position_label.setText(f"{m.decode_position} ({label[:12]})")
        self.position.blockSignals(False)
