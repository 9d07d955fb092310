"""The parameter panel: example, sizes, init and seed, causal, dropout, bias, device, Book preset.

Every edit calls ``controller.set_params``; the panel shows the view model's ``config_changed``
(a frozen ``AttentionConfig``) back without re-emitting, and puts each ``error(field, message)``
in red next to its control. Spin boxes apply on Enter, arrows or focus-out (no recompute per
keystroke).
"""
from __future__ import annotations

from PySide6 import QtGui, QtWidgets

from gui.controller import BOOK_TEXT
from gui.elided import ElidedLabel

INT32_MAX = 2**31 - 1
BOOK, OWN = "Book sentence", "Own text"

# ConfigError fields -> the control whose error label shows them
FIELD_ALIASES = {"embeddings": "text", "config": "text"}


MAX_SHOWN_CHARS = 160          # an error next to a control; the whole message is in its tooltip


def one_line(message: str) -> str:
    """The first line of a message, shortened to MAX_SHOWN_CHARS."""
    lines = message.strip().splitlines() or [""]
    line = lines[0]
    if len(lines) > 1 or len(line) > MAX_SHOWN_CHARS:
        line = line[:MAX_SHOWN_CHARS - 1].rstrip() + "…"
    return line


class ParamPanel(QtWidgets.QWidget):
    def __init__(self, controller, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("paramPanel")
        self._updating = False
        self._typed: dict[str, str] = {}      # spin box name -> text typed since the last edit finished
        self.errors: dict[str, QtWidgets.QLabel] = {}
        self.widgets: dict[str, QtWidgets.QWidget] = {}

        self.book = QtWidgets.QPushButton("Book", objectName="bookPreset", checkable=True)
        self.book.setToolTip("The chapter's settings: every step shows the numbers the book prints (Ctrl+B)")
        self.book.clicked.connect(self.controller.use_book)
        self.mode = QtWidgets.QLabel(objectName="modeLabel")
        self.mode.setMinimumWidth(120)     # grows to fit the longest label shown (see _on_mode)
        self.mode.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.example = QtWidgets.QComboBox(objectName="example")
        self.example.addItems([BOOK, OWN])
        self.example.setToolTip("Book sentence: the chapter's 3-d embeddings. Own text: seeded random embeddings")
        self.example.activated.connect(self._on_example)
        self.text = QtWidgets.QLineEdit(objectName="text")
        self.text.setPlaceholderText("type a sentence and press Enter")
        self.text.setClearButtonEnabled(True)
        # Qt cuts a longer paste silently at 32767 characters; the config refuses texts over its
        # limit (core.config.MAX_TEXT_CHARS = 100,000) with a message instead
        self.text.setMaxLength(1_000_000)
        self.text.editingFinished.connect(self._on_text)
        self.text.returnPressed.connect(self.text.clearFocus)     # arrow keys step again
        self.d_in = self._spin("d_in", 1, 8192, "embedding width (own text only; the book's vectors are 3-d)")
        self.d_out = self._spin("d_out", 1, 8192, "projection width d_out (all heads together)")
        self.num_heads = self._spin("num_heads", 1, 256, "number of heads; must divide d_out")
        self.init = QtWidgets.QComboBox(objectName="init")
        self.init.addItems(["rand", "linear"])
        self.init.setToolTip("rand: torch.rand (SelfAttention_v1); linear: nn.Linear (v2 and later)")
        self.init.activated.connect(lambda _i: self._set("init", self.init.currentText()))
        self.seed = self._spin("seed", 0, INT32_MAX, "torch.manual_seed before the weights are drawn")
        self.causal = QtWidgets.QCheckBox("causal", objectName="causal")
        self.causal.setToolTip("mask future tokens in the causal and multi-head stages")
        self.causal.clicked.connect(lambda on: self._set("causal", bool(on)))
        self.dropout = QtWidgets.QDoubleSpinBox(objectName="dropout")
        self.dropout.setRange(0.0, 0.99)
        self.dropout.setSingleStep(0.1)
        self.dropout.setDecimals(2)
        self.dropout.setKeyboardTracking(False)
        self.dropout.setToolTip("dropout rate p on the causal attention weights")
        self.dropout.valueChanged.connect(lambda v: self._set("dropout", round(float(v), 4)))
        self.dropout.lineEdit().returnPressed.connect(self.dropout.clearFocus)
        self.dropout_seed = self._spin("dropout_seed", 0, INT32_MAX, "torch.manual_seed right before dropout")
        self.qkv_bias = QtWidgets.QCheckBox("qkv_bias", objectName="qkv_bias")
        self.qkv_bias.setToolTip("bias in the query/key/value projections")
        self.qkv_bias.clicked.connect(lambda on: self._set("qkv_bias", bool(on)))
        self.batch = self._spin("batch", 1, 64, "copies of the inputs stacked (causal and multi-head stages)")
        self.device = QtWidgets.QComboBox(objectName="device")
        self.device.addItem("CPU", "cpu")
        self.device.setToolTip("where torch computes the trace (CUDA is listed when a GPU is available)")
        self.device.activated.connect(lambda _i: self._set("device", self.device.currentData()))
        self.widgets.update(text=self.text, init=self.init, causal=self.causal, dropout=self.dropout,
                            qkv_bias=self.qkv_bias, device=self.device, example=self.example)

        row1 = [("", self.book), ("", self.mode), ("example", self.example), ("text", self.text),
                ("d_in", self.d_in), ("batch", self.batch), ("device", self.device)]
        row2 = [("d_out", self.d_out), ("heads", self.num_heads), ("init", self.init), ("seed", self.seed),
                ("", self.causal), ("dropout", self.dropout), ("dropout seed", self.dropout_seed),
                ("", self.qkv_bias)]
        grid = QtWidgets.QVBoxLayout(self)
        grid.setContentsMargins(6, 4, 6, 4)
        grid.setSpacing(0)            # (2 px between the rows below: the error line adds its height only)
        fields = {id(w): n for n, w in self.widgets.items()}
        # A field's error is one line of the panel's whole width under the rows (beside its control
        # the crowded second row left it "num_heads: d…"); it names the field, and only one shows.
        errors = QtWidgets.QHBoxLayout()
        for row in (row1, row2):
            lay = QtWidgets.QHBoxLayout()
            for label, w in row:
                if label:
                    lay.addWidget(QtWidgets.QLabel(label))
                lay.addWidget(w, 3 if w is self.text else (2 if w is self.mode else 0))
                name = fields.get(id(w))
                if name and name not in ("example",):
                    err = ElidedLabel(objectName=f"error_{name}")      # one line: never widens the window
                    err.setStyleSheet("color: #c0392b;")
                    err.setVisible(False)
                    self.errors[name] = err
                    errors.addWidget(err, 1)
            lay.addStretch(1)
            if row is row2:
                grid.addSpacing(2)
            grid.addLayout(lay)
        self.general_error = ElidedLabel(objectName="error_general")
        self.general_error.setStyleSheet("color: #c0392b;")
        self.general_error.setVisible(False)
        errors.addWidget(self.general_error, 1)
        grid.addLayout(errors)
        self.setEnabled(False)     # until the first trace tells us the book's configs

        model = controller.model                 # what is shown; the controller computes and validates
        model.config_changed.connect(self.show_config)
        model.mode_changed.connect(self._on_mode)
        model.trace_changed.connect(self._on_trace)
        model.step_changed.connect(lambda _i: self._on_mode(self.controller.mode))
        controller.error.connect(self.show_error)
        controller.error_cleared.connect(self.clear_errors)
        self._on_mode(controller.mode)

    def _spin(self, name: str, low: int, high: int, tip: str) -> QtWidgets.QSpinBox:
        w = QtWidgets.QSpinBox(objectName=name)
        w.setRange(low, high)
        w.setKeyboardTracking(False)
        w.setToolTip(tip)
        w.setMaximumWidth(110 if high > 100_000 else 80)
        w.valueChanged.connect(lambda v: self._set(name, int(v)))
        w.lineEdit().returnPressed.connect(w.clearFocus)             # arrow keys step again
        # typed text the box cannot take (0, a number past the range) is put back silently by
        # Qt; say why next to the control
        w.lineEdit().textEdited.connect(lambda text: self._typed.__setitem__(name, text))
        w.editingFinished.connect(lambda: self._check_typed(name, w))
        self.widgets[name] = w
        return w

    def _check_typed(self, name: str, w: QtWidgets.QSpinBox) -> None:
        typed = self._typed.pop(name, None)
        if typed is None or self._updating:
            return
        try:
            ok = int(typed.strip()) == w.value()
        except ValueError:
            ok = False
        if not ok:
            self.show_error(name, f"must be a whole number between {w.minimum()} and {w.maximum()}; "
                                  f"got {typed.strip()!r}, kept {w.value()}")

    # ---- edits -> controller -----------------------------------------------------------
    def _set(self, field: str, value) -> None:
        if not self._updating:
            self.controller.set_params(**{field: value})

    def _on_example(self, _index: int) -> None:
        if self.example.currentText() == BOOK:
            self.controller.set_params(embeddings="book", text=BOOK_TEXT, d_in=3)
        else:
            text = self.text.text().strip() or "The cat sat on the mat"
            self.controller.set_params(embeddings="random", text=text)

    def _on_text(self) -> None:
        if self._updating:
            return
        text = self.text.text()
        shown = self.controller.shown_config()
        if text == shown.get("text"):
            return
        if shown.get("embeddings") == "book":
            self.controller.set_params(embeddings="random", text=text)
        else:
            self.controller.set_params(text=text)

    # ---- controller -> widgets ---------------------------------------------------------
    def show_config(self, config) -> None:
        """Show a frozen ``core.config.AttentionConfig`` (the model's ``config``)."""
        if config is None:
            return
        cfg = config.to_dict()
        self._updating = True
        try:
            self.setEnabled(True)
            own = cfg.get("embeddings") != "book"
            self.example.setCurrentText(OWN if own else BOOK)
            # only what changed: setText and setValue repaint a box even with the same value
            # (~0.8 ms of the first frame after every change, all boxes over again)
            if not self.text.hasFocus() and self.text.text() != str(cfg.get("text", "")):
                self.text.setText(str(cfg.get("text", "")))
                self.text.setCursorPosition(0)
            self.d_in.setEnabled(own)
            beyond = []
            for name in ("d_in", "d_out", "num_heads", "seed", "dropout_seed", "batch"):
                value, box = int(cfg.get(name, 0)), self.widgets[name]
                shown = min(value, box.maximum())
                if box.value() != shown:
                    box.setValue(shown)
                if value > box.maximum():      # a seed up to 2**63-1 from a lesson: the box stops at 2**31-1
                    beyond.append((name, value))
            self.init.setCurrentText(cfg.get("init", "linear"))
            self.causal.setChecked(bool(cfg.get("causal", True)))
            dropout = float(cfg.get("dropout", 0.0))
            if self.dropout.value() != dropout:
                self.dropout.setValue(dropout)
            self.qkv_bias.setChecked(bool(cfg.get("qkv_bias", False)))
            dev = cfg.get("device", "auto")
            if dev == "auto":
                dev = "cuda" if self.controller.cuda_available else "cpu"
            i = self.device.findData(dev)
            self.device.setCurrentIndex(max(i, 0))
            for name, value in beyond:
                label = self.errors[name]
                label.setText(f"{value} (the box shows at most {self.widgets[name].maximum()})")
                label.setToolTip(f"the trace uses {name} {value}; typing a value here replaces it")
                label.setVisible(True)
        finally:
            self._updating = False

    def _apply_limits(self) -> None:
        """The spin boxes' ranges from core.config's limits (loaded with the first trace; until
        then the panel is disabled), so the boxes and the CLI refuse the same values."""
        if getattr(self, "_limits_applied", False):
            return
        self._limits_applied = True
        from core import config
        self._updating = True
        try:
            for name, limit in (("d_in", config.MAX_DIM), ("d_out", config.MAX_DIM),
                                ("num_heads", config.MAX_HEADS), ("batch", config.MAX_BATCH),
                                ("seed", min(config.MAX_SEED, INT32_MAX)),
                                ("dropout_seed", min(config.MAX_SEED, INT32_MAX))):
                self.widgets[name].setMaximum(limit)
        finally:
            self._updating = False

    def _on_trace(self) -> None:
        self._apply_limits()
        if self.controller.cuda_available and self.device.findData("cuda") < 0:
            self.device.addItem("CUDA", "cuda")
        self._on_mode(self.controller.mode)

    def _on_mode(self, mode: str) -> None:
        self.book.setChecked(mode == "book")
        if mode == "book":
            desc = self.controller.section_title(self.controller.step.section)
            self.mode.setText(f"<b>Book</b> settings · §{desc.split(' ', 1)[0]}")
            # section numbers vary in length: never clip one (the width only grows, so no relayout loop)
            bold = QtGui.QFont(self.mode.font())
            bold.setBold(True)
            need = QtGui.QFontMetrics(bold).horizontalAdvance(f"Book settings · §{desc.split(' ', 1)[0]}") + 8
            self.mode.setMinimumWidth(max(self.mode.minimumWidth(), need))
            self.mode.setToolTip(f"Book settings for this step: {desc}. Changing any value switches to Custom.")
        else:
            self.mode.setText("<b>Custom</b> settings")
            self.mode.setToolTip("Your settings apply to every step; press Book to return to the chapter's")

    def show_error(self, field: str, message: str) -> None:
        """One line naming the field next to its control (the whole message in the tooltip)."""
        self.clear_errors()
        line = one_line(f"{field}: {message}" if field else message)
        field = FIELD_ALIASES.get(field, field)
        label = self.errors.get(field, self.general_error)
        label.setText(line)
        label.setToolTip(message)
        label.setVisible(True)

    def clear_errors(self) -> None:
        for label in list(self.errors.values()) + [self.general_error]:
            label.clear()
            label.setVisible(False)
