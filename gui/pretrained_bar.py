"""Stage 5's controls: the text (WordPiece pieces become the labels), layer, head and the two options.

Shown above the steps while a step of the pretrained stage is on screen. The options are
labelled as the export's manifest names them (hide_special, full_layer). The head is the view
model's (``model.set_head``): the trace holds all 12 heads, so a head change redraws at once.
"""
from __future__ import annotations

from PySide6 import QtWidgets

from gui.pretrained_controller import EXAMPLE_TEXT

NUM_LAYERS, NUM_HEADS = 6, 12


class PretrainedBar(QtWidgets.QWidget):
    def __init__(self, pretrained, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("pretrainedBar")
        self.pretrained = pretrained
        self.model = pretrained.model
        self.text = QtWidgets.QLineEdit(pretrained.options.text, objectName="pretrainedText")
        self.text.setToolTip("The sentence the real model reads (Enter applies); its WordPiece pieces label the maps")
        self.example = QtWidgets.QPushButton("Example", objectName="pretrainedExample")
        self.example.setToolTip(f"The ready example: “{EXAMPLE_TEXT}” (a previous-token head; “him” → “dog”)")
        self.layer = QtWidgets.QSpinBox(objectName="pretrainedLayer")
        self.layer.setRange(0, NUM_LAYERS - 1)
        self.layer.setToolTip("Encoder layer 0…5 (counted from 0)")
        self.head = QtWidgets.QComboBox(objectName="pretrainedHead")
        self.head.addItems(["all 12"] + [str(h) for h in range(NUM_HEADS)])
        self.head.setToolTip("One head of the layer, or all 12 side by side")
        self.hide_special = QtWidgets.QCheckBox("Hide [CLS]/[SEP] + renormalise rows", objectName="pretrainedHideSpecial")
        self.hide_special.setToolTip("Also show the weights without [CLS]/[SEP], each row divided by what is "
                                     "left (a display option; manifest: hide_special)")
        self.scope = QtWidgets.QComboBox(objectName="pretrainedScope")
        self.scope.addItems(["Attention only", "Full layer (+ residual, LayerNorm, FF)"])
        self.scope.setToolTip("Stop at the attention's output projection, or compute the rest of the "
                              "BERT layer too (manifest: full_layer)")
        self.text.setMinimumWidth(280)
        # two rows: the text gets a whole row (long sentences stay readable at 1366 px)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("<b>all-MiniLM-L6-v2</b> · Text:"))
        top.addWidget(self.text, 1)
        top.addWidget(self.example)
        row = QtWidgets.QHBoxLayout()
        for label, w in (("Layer", self.layer), ("Head", self.head)):
            row.addWidget(QtWidgets.QLabel(label))
            row.addWidget(w)
            row.addSpacing(8)
        row.addWidget(self.hide_special)
        row.addSpacing(8)
        row.addWidget(self.scope)
        row.addStretch(1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        lay.setSpacing(2)
        lay.addLayout(top)
        lay.addLayout(row)
        self.text.returnPressed.connect(lambda: pretrained.set_options(text=self.text.text()))
        self.example.clicked.connect(self.use_example)
        self.layer.valueChanged.connect(lambda v: pretrained.set_options(layer=int(v)))
        self.head.currentIndexChanged.connect(lambda i: self.model.set_head(None if i <= 0 else i - 1))
        self.hide_special.toggled.connect(lambda on: pretrained.set_options(hide_special=bool(on)))
        self.scope.currentIndexChanged.connect(lambda i: pretrained.set_options(full_layer=i == 1))
        pretrained.options_changed.connect(self._show_options)
        self.model.head_changed.connect(self._show_head)
        self._show_options(pretrained.options)
        self._show_head(self.model.head)

    def use_example(self) -> None:
        self.text.setText(EXAMPLE_TEXT)
        self.pretrained.set_options(text=EXAMPLE_TEXT)

    def _show_options(self, options) -> None:
        for w in (self.text, self.layer, self.hide_special, self.scope):
            w.blockSignals(True)
        if self.text.text() != options.text:
            self.text.setText(options.text)
        self.layer.setValue(options.layer)
        self.hide_special.setChecked(options.hide_special)
        self.scope.setCurrentIndex(1 if options.full_layer else 0)
        for w in (self.text, self.layer, self.hide_special, self.scope):
            w.blockSignals(False)

    def _show_head(self, head) -> None:
        self.head.blockSignals(True)
        self.head.setCurrentIndex(0 if head is None else min(int(head), NUM_HEADS - 1) + 1)
        self.head.blockSignals(False)
