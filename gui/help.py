"""Help: the keyboard-shortcuts sheet, generated from the window's action registry, and the tour.

:func:`shortcut_rows` reads the menus' actions as they are (text, keys, tip), so the sheet can never
list a key the window does not have, or miss one it has. :class:`Tour` is a short, skippable walk
through the window: a bubble inside the window beside a blue-framed widget (the navigator, a map,
the hover line, the inspector, the code panel, Book, stage 5's heading in the navigator, the menu
that opens Train and Cost, which the tour does not open), with Back / Next / Skip at one place: the
bubble has one size for every stop. It takes no keyboard
focus, so the stepping keys keep working while it is open; Esc skips it.
"""
from __future__ import annotations

import html

from PySide6 import QtCore, QtGui, QtWidgets

from gui.focus import FRAME_COLOR

NATIVE = QtGui.QKeySequence.SequenceFormat.NativeText


def shortcut_rows(menu_actions: dict[str, list[QtGui.QAction]]) -> list[tuple[str, str, str, str]]:
    """(menu, action, keys, what it does) for every action of every menu, in menu order."""
    rows = []
    for menu, actions in menu_actions.items():
        for act in actions:
            keys = ", ".join(k.toString(NATIVE) for k in act.shortcuts())
            rows.append((menu, act.text().replace("&", "").rstrip("…"), keys, act.statusTip()))
    return rows


def shortcuts_html(menu_actions: dict[str, list[QtGui.QAction]]) -> str:
    out = ["<h3>Keyboard shortcuts</h3>",
           "<p>The stepping keys (← → PageUp PageDown Home End) work wherever the focus is, except while "
           "typing in a text field, a spin box or a table; the focused widget has a blue frame.</p>"]
    out.append("<table cellspacing='0' cellpadding='3'>")      # one table: the columns line up
    menu = None
    for m, text, keys, tip in shortcut_rows(menu_actions):
        if m != menu:
            out.append(f"<tr><td colspan='3'><b><big>{html.escape(m)}</big></b></td></tr>")
            menu = m
        out.append(f"<tr><td><b>{html.escape(keys) or '—'}</b></td><td>{html.escape(text)}</td>"
                   f"<td style='color:#555'>{html.escape(tip) if tip != text else ''}</td></tr>")
    out.append("</table>")
    return "".join(out)


class Sheet(QtWidgets.QDialog):
    """A non-modal window of the main window that takes the keyboard when it opens (so Esc, which
    closes it, reaches it even where the window manager leaves the focus with the main window)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, objectName: str = ""):
        super().__init__(parent, objectName=objectName)
        esc = QtGui.QShortcut(QtGui.QKeySequence(QtCore.Qt.Key.Key_Escape), self, self.close)
        esc.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.raise_()
        self.activateWindow()


def shortcuts_dialog(parent: QtWidgets.QWidget, menu_actions) -> QtWidgets.QDialog:
    """Help → Keyboard shortcuts: a non-modal sheet (it may stay open beside the window); Esc closes it."""
    dialog = Sheet(parent, objectName="shortcutsSheet")
    dialog.setWindowTitle("Keyboard shortcuts")
    dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    text = QtWidgets.QTextBrowser(objectName="shortcutsText")
    text.setHtml(shortcuts_html(menu_actions))
    close = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
    close.rejected.connect(dialog.close)
    lay = QtWidgets.QVBoxLayout(dialog)
    lay.addWidget(text)
    lay.addWidget(close)
    dialog.resize(640, 560)
    return dialog


# ---- the tour ------------------------------------------------------------------------------------
def tour_stops(window) -> list[tuple[str, QtWidgets.QWidget | None, str]]:
    """(name, widget to point at, text) of each stop; the widgets are the window's own."""
    sv = window.step_view
    panels = [p for p in (getattr(sv, "panels", None) or []) if p.isVisible()]
    docks = window.docks
    return [
        ("navigator", window.navigator,
         "<b>The chapter's steps.</b> Click one, or step with → / ← (PageDown / PageUp, Home / End) "
         "from anywhere in the window. Back and Next are also at the bottom."),
        ("map", panels[0] if panels else window.stack,
         "<b>A map</b> of the step: one heatmap per matrix, rows and columns labelled with the tokens. "
         "Click a matrix to pick it for File → Export matrix (Ctrl+E)."),
        ("hover", getattr(sv, "hover", None),
         "<b>Hover</b> a cell: what it is (which dot product, which weight) and its exact value show here."),
        ("inspector", docks.get("inspector"),
         "<b>Click a cell</b>: the cell inspector shows the arithmetic that makes its number and frames "
         "the cells it comes from (View → Cell inspector, Ctrl+Shift+I)."),
        ("code", docks.get("code"),
         "<b>The code</b>: the chapter's torch lines behind the matrix under focus; copy them and run "
         "them to get the same numbers (Ctrl+Shift+C)."),
        ("book", window.params.book,
         "<b>Book</b> (Ctrl+B) restores the chapter's settings, so every number matches the book. Type "
         "your own text or change the sizes here: every step follows."),
        ("stage5", lambda: _stage_item_rect(window, "pretrained"),
         "<b>Stage 5: a real model.</b> The same steps inside a pretrained BERT (all-MiniLM-L6-v2, "
         "6 layers × 12 heads) on your sentence: its heads' weights, a gallery of every head and token "
         "lines. The model loads the first time you open a stage-5 step."),
        ("train", lambda: _menu_rect(window, "train"),
         "<b>Train attention</b> (View menu, Ctrl+Shift+T) opens a window where the chapter's "
         "MultiHeadAttention learns a toy task: watch a previous-token head and an induction head form."),
        ("cost", lambda: _menu_rect(window, "cost"),
         "<b>Cost of attention</b> (View menu, Ctrl+Shift+M) measures how time and memory grow with the "
         "number of tokens (T²). Help → Tour of the window shows this tour again."),
    ]


def _menu_rect(window, action: str) -> QtCore.QRect | None:
    """The menu bar's title of the menu that holds ``action`` (in the window's coordinates): the
    tour points at the menu without opening it, nor the window the action opens."""
    act = window.actions.get(action)
    bar = window.menuBar()
    for title_action in bar.actions():
        menu = title_action.menu()
        if menu is not None and act in menu.actions():
            r = bar.actionGeometry(title_action)
            return QtCore.QRect(bar.mapTo(window, r.topLeft()), r.size()) if r.isValid() else None
    return None


def _stage_item_rect(window, stage: str) -> QtCore.QRect | None:
    """The navigator's heading of ``stage`` (scrolled into view, the step unchanged)."""
    nav = window.navigator
    from gui.steps import stages_in_order
    names = [s for s, _t, _i in stages_in_order()]
    if stage not in names:
        return None
    item = nav.topLevelItem(names.index(stage))
    nav.scrollToItem(item, QtWidgets.QAbstractItemView.ScrollHint.PositionAtCenter)
    r = nav.visualItemRect(item)
    if not r.isValid():
        return None
    r = QtCore.QRect(nav.viewport().mapTo(window, r.topLeft()), r.size())
    return r & QtCore.QRect(nav.mapTo(window, QtCore.QPoint(0, 0)), nav.size())


def target_rect(window, target) -> QtCore.QRect | None:
    """Where a stop's target is in the window: a widget (its visible part), or a callable giving a
    rectangle (a menu title, a navigator item); None when it is not on screen."""
    if target is None:
        return None
    if callable(target) and not isinstance(target, QtWidgets.QWidget):
        r = target()
        return (r & window.rect()) if r is not None and not r.isEmpty() else None
    if not target.isVisible():
        return None
    return QtCore.QRect(target.mapTo(window, QtCore.QPoint(0, 0)), target.size()) & window.rect()


class Tour(QtWidgets.QFrame):
    """The tour's bubble (a child of the window) and the frame around the widget it points at."""

    finished = QtCore.Signal()

    def __init__(self, window):
        super().__init__(window)
        self.window_ = window
        self.setObjectName("tour")
        self.setFrameShape(QtWidgets.QFrame.Shape.Box)
        self.setAutoFillBackground(True)
        self.setStyleSheet("#tour { background: #fffbe6; border: 2px solid %s; border-radius: 6px; }"
                           % FRAME_COLOR.name())
        self.stops = tour_stops(window)
        self.at = 0
        self.text = QtWidgets.QLabel(objectName="tourText")
        self.text.setWordWrap(True)
        self.counter = QtWidgets.QLabel(objectName="tourCounter")
        self.back = QtWidgets.QPushButton("Back", objectName="tourBack")
        self.next = QtWidgets.QPushButton("Next", objectName="tourNext")
        self.skip = QtWidgets.QPushButton("Skip tour", objectName="tourSkip")
        for b in (self.back, self.next, self.skip):
            b.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)      # the stepping keys stay with the window
        self.back.clicked.connect(lambda: self.show_stop(self.at - 1))
        self.next.clicked.connect(lambda: self.show_stop(self.at + 1) if self.at + 1 < len(self.stops)
                                  else self.close())
        self.skip.clicked.connect(self.close)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.counter)
        buttons.addStretch(1)
        for b in (self.skip, self.back, self.next):
            buttons.addWidget(b)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.text, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        lay.addStretch(1)                 # the buttons stay at the bubble's bottom, the bubble one size
        lay.addLayout(buttons)
        self.pointer = QtWidgets.QRubberBand(QtWidgets.QRubberBand.Shape.Rectangle, window)
        self.pointer.setObjectName("tourPointer")
        self.escape = QtGui.QShortcut(QtGui.QKeySequence(QtCore.Qt.Key.Key_Escape), window, self.close)
        self.hide()

    @property
    def target(self):
        """The current stop's widget, or the callable giving its rectangle."""
        return self.stops[self.at][1] if self.stops else None

    def _fixed_size(self) -> None:
        """One size for every stop (the largest text's): Back and Next do not move under the
        mouse from one stop to the next."""
        win = self.window_
        width = min(380, max(240, win.width() // 4))
        if getattr(self, "_sized_for", None) == width:
            return
        self._sized_for = width
        self.setMinimumSize(0, 0)
        self.setMaximumSize(16777215, 16777215)
        self.setFixedWidth(width)
        heights = []
        for _name, _w, text in self.stops:
            self.text.setText(text)
            self.layout().activate()
            heights.append(self.layout().totalHeightForWidth(width) if self.layout().hasHeightForWidth()
                           else self.sizeHint().height())
        self.setFixedHeight(max(heights))

    def start(self) -> None:
        self.show_stop(0)

    def show_stop(self, at: int) -> None:
        self.at = max(0, min(at, len(self.stops) - 1))
        self._fixed_size()
        name, widget, text = self.stops[self.at]
        self.text.setText(text)
        self.counter.setText(f"{self.at + 1} / {len(self.stops)}")
        self.back.setEnabled(self.at > 0)
        self.next.setText("Next" if self.at + 1 < len(self.stops) else "Done")
        win = self.window_
        if isinstance(widget, QtWidgets.QDockWidget) and (not widget.isVisible() or widget.visibleRegion().isEmpty()):
            win.show_dock(next(k for k, d in win.docks.items() if d is widget))   # closed, or behind a tab
            widget.raise_()
            QtWidgets.QApplication.processEvents()      # its tab in front and laid out before it is framed
        self._place(widget)
        self.show()
        self.raise_()

    def _place(self, widget) -> None:
        """Frame ``widget`` and put the bubble beside it (right, else left, else below, else above),
        in the window."""
        win = self.window_
        r = target_rect(win, widget)
        if r is None:
            self.pointer.hide()
            self.move((win.width() - self.width()) // 2, (win.height() - self.height()) // 2)
            return
        self.pointer.setGeometry(r.adjusted(-3, -3, 3, 3))
        self.pointer.show()
        self.pointer.raise_()
        w, h = self.width(), self.height()
        bar = win.menuBar() if hasattr(win, "menuBar") else None
        if bar is not None and r.top() <= bar.geometry().bottom() and r.bottom() + 12 + h <= win.height():
            # a menu title: the bubble hangs below it, the menu bar stays in view
            self.move(max(0, min(r.left(), win.width() - w)), r.bottom() + 12)
            return
        if r.right() + 12 + w <= win.width():
            x = r.right() + 12
        elif r.left() - 12 - w >= 0:
            x = r.left() - 12 - w
        else:                   # a wide target (the hover line under the maps): below or above it
            x = max(0, min(r.center().x() - w // 2, win.width() - w))
            below, above = r.bottom() + 12, r.top() - 12 - h
            y = below if below + h <= win.height() else above if above >= 0 else win.height() - h - 8
            self.move(x, max(0, min(y, win.height() - h)))      # over a target as large as the window: inside it
            return
        self.move(x, max(0, min(r.top(), win.height() - h)))

    def closeEvent(self, event) -> None:
        self.pointer.hide()
        self.escape.setEnabled(False)
        super().closeEvent(event)
        self.finished.emit()
