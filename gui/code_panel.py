"""The code beside the math: the torch lines behind the shown matrix, and a runnable snippet.

Shows ``core.snippets.stage_code`` for the stage of the matrix under focus (the step's last
matrix until the learner clicks one), with the line that produces that matrix highlighted.
"Copy snippet" puts a runnable script (torch only) on the clipboard that prints the matrix
with the numbers on screen, edited embeddings and weights included.
"""
from __future__ import annotations

import html

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

HIGHLIGHT = "#fff1b8"


def snippet_for(trace, stage: str, name: str, weights: dict | None = None, batch_index: int | None = None) -> str:
    """core.snippets.snippet, with edited W_query/W_key/W_value written in (trainable, causal)
    and, for a batched intermediate, printing the batch item on screen."""
    from core.snippets import snippet
    code = snippet(trace, stage, name)
    if batch_index is not None and trace[stage, name].axes[:1] == ("batch",):
        last = f"print({name})\n"
        if code.endswith(last):
            code = code[:-len(last)] + f"print({name}[{batch_index}])  # batch item {batch_index}, as shown\n"
    if not weights or stage not in ("trainable", "causal"):
        return code
    from core.snippets import with_given
    dtype = "torch.float64" if trace.config.dtype == "float64" else "torch.float32"
    literals = {}
    for wname, arr in weights.items():
        rows = ", ".join("[" + ", ".join(repr(float(v)) for v in row) + "]" for row in np.asarray(arr))
        literals[wname] = f"torch.tensor([{rows}], dtype={dtype})"
    return "\n".join(with_given(code.split("\n"), literals, "edited in the app"))


class CodePanel(QtWidgets.QWidget):
    copied = QtCore.Signal(str)

    def __init__(self, model, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("codePanel")
        self.model = model
        self.key: tuple[str, str] | None = None      # the matrix whose line is highlighted
        self._rows: list[tuple[str, str]] | None = None   # the lines on show (see _show_rows)
        self._scrolled: tuple[int, int] | None = None      # scroll bars as refresh left them
        self.title = QtWidgets.QLabel(objectName="codeTitle")
        # a long name (pretrained.attn_weights_no_special) must not widen the dock, nor the window
        self.title.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.code = QtWidgets.QTextBrowser(objectName="codeText")
        # long lines wrap at the panel's width: the highlighted line is read whole, never cut at
        # the right edge behind a sideways scroll bar
        self.code.setLineWrapMode(QtWidgets.QTextEdit.LineWrapMode.WidgetWidth)
        self.code.setWordWrapMode(QtGui.QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.code.setUndoRedoEnabled(False)          # lines replaced in place (_show_rows) keep no history
        self.copy_button = QtWidgets.QPushButton("Copy snippet", objectName="copySnippet")
        self.copy_button.setToolTip("Copy a runnable Python script (torch only) that prints this matrix "
                                    "with the numbers on screen")
        self.copy_button.clicked.connect(self.copy_snippet)
        from gui.keys import keep_navigation_keys
        keep_navigation_keys(self.code)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.copy_button)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.code, 1)
        model.shown_changed.connect(self._on_shown)     # a new step, trace, head or batch item
        model.focus_changed.connect(self.refresh)
        self.refresh()

    def _on_shown(self) -> None:
        if self.model.ready():      # a change's first part: the maps first, this pane with the rest
            self.refresh()

    def _current_key(self) -> tuple[str, str] | None:
        """The matrix the learner picked on this step, else the step's last (non-difference) one."""
        datas = self.model.shown
        if not datas:
            return None
        if self.model.focus_picked:
            focused = self.model.focused()
            if focused:
                return focused[0].key
        plain = [d for d in datas if d.extra.get("max_abs_diff") is None]
        return (plain or datas)[-1].key

    def refresh(self) -> None:
        trace = self.model.trace
        self.key = self._current_key()
        if trace is None or self.key is None:
            self.title.setText("")
            self.code.setHtml("")
            self._rows = None
            self.copy_button.setEnabled(False)
            return
        from core.snippets import stage_code
        stage, name = self.key
        lines = stage_code(trace.config, stage)
        self.title.setText(f"<b>{stage}.{name}</b> in torch")
        rows = []                                  # (style, text) per line of code
        for n, line in lines:
            if n == name:
                rows.append(("hl", line))
            elif line.lstrip().startswith("#"):
                rows.append(("comment", line))
            else:
                rows.append(("", line))
        if stage == "simplified" and name == "inputs":
            rows.insert(0, ("hl", "inputs = torch.tensor([...])  # the embeddings"))
        self._show_rows(rows)
        self.copy_button.setEnabled(True)
        self._scroll_to_highlight(lines, name)

    def _show_rows(self, rows: list[tuple[str, str]]) -> None:
        """Show the code lines; when only some lines' text changed (a new seed, say), replace
        just those lines instead of re-parsing the whole document (setHtml re-lays it out)."""
        old = self._rows
        self._rows = rows
        doc = self.code.document()
        if (old is not None and len(old) == len(rows) and doc.blockCount() == len(rows)
                and all(a[0] == b[0] for a, b in zip(old, rows))):
            changed = [k for k, (a, b) in enumerate(zip(old, rows)) if a[1] != b[1]]
            bars = (self.code.verticalScrollBar(), self.code.horizontalScrollBar())
            if tuple(b.value() for b in bars) != self._scrolled:
                for b in bars:                     # scrolled away: back to the top, as setHtml does
                    b.setValue(b.minimum())
            cursor = QtGui.QTextCursor(doc)
            cursor.beginEditBlock()
            for k in changed:
                block = doc.findBlockByNumber(k)
                c = QtGui.QTextCursor(block)
                c.movePosition(QtGui.QTextCursor.MoveOperation.EndOfBlock, QtGui.QTextCursor.MoveMode.KeepAnchor)
                fmt = block.begin().fragment().charFormat() if block.begin() != block.end() else c.charFormat()
                c.insertText(rows[k][1] or "\u00a0", fmt)
            cursor.endEditBlock()
            return
        out = []
        for style, line in rows:
            esc = html.escape(line) or "&nbsp;"
            if style == "hl":
                out.append(f"<div style='background:{HIGHLIGHT}; font-weight:bold;'>{esc}</div>")
            elif style == "comment":
                out.append(f"<div style='color:#6a737d'>{esc}</div>")
            else:
                out.append(f"<div>{esc}</div>")
        self.code.setHtml("<pre style='font-family: monospace; margin:0; white-space: pre-wrap'>" + "".join(out) + "</pre>")

    def _scroll_to_highlight(self, lines, name: str) -> None:
        for k, (n, _line) in enumerate(lines):
            if n == name:
                block = self.code.document().findBlockByNumber(k)
                if block.isValid():
                    # setTextCursor and ensureCursorVisible repaint the code's frame and scroll
                    # bars (lines on the last page re-adjust the scroll bars) even when nothing
                    # moves: call them only when the cursor moves or the line would scroll into
                    # view (not fully in view, or scrolled sideways away from the line's start)
                    cur = QtGui.QTextCursor(block)
                    now = self.code.textCursor()
                    if now.position() != cur.position() or now.hasSelection():
                        self.code.setTextCursor(cur)
                    # the whole line in view (a long one wraps over several), centred when it has to move
                    rect = self.code.document().documentLayout().blockBoundingRect(block)
                    vbar, hbar = self.code.verticalScrollBar(), self.code.horizontalScrollBar()
                    height = self.code.viewport().height()
                    top, bottom = rect.top() - vbar.value(), rect.bottom() - vbar.value()
                    if top < 0 or bottom > height or hbar.value() != hbar.minimum():
                        vbar.setValue(int(rect.top() - max(0.0, (height - rect.height()) / 2)))
                        hbar.setValue(hbar.minimum())
                break
        self._scrolled = (self.code.verticalScrollBar().value(), self.code.horizontalScrollBar().value())

    def highlighted_line(self) -> str | None:
        """The line shown highlighted (for tests)."""
        trace = self.model.trace
        if trace is None or self.key is None:
            return None
        from core.snippets import stage_code
        return next((line for n, line in stage_code(trace.config, self.key[0]) if n == self.key[1]), None)

    def current_snippet(self) -> str:
        stage, name = self.key
        data = next((d for d in self.model.shown if d.key == self.key), None)
        all_items = data is not None and any(m.title.startswith("batch") for m in data.maps)
        return snippet_for(self.model.trace, stage, name, self.model.weights,
                           None if all_items else self.model.batch_index)

    def copy_snippet(self) -> None:
        if self.model.trace is None or self.key is None:
            return
        try:
            text = self.current_snippet()
        except KeyError as exc:
            self.title.setText(f"no snippet: {html.escape(str(exc))}")
            return
        QtGui.QGuiApplication.clipboard().setText(text)
        self.copied.emit(f"Copied a runnable snippet that prints {self.key[0]}.{self.key[1]} "
                         f"({len(text.splitlines())} lines)")
