"""The step navigator: a tree (stage → steps) and the Back / counter / Next bar.

Both observe the view model's ``step_changed`` and call its ``go``/``next``/``back``.
"""
from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from gui.steps import stages_in_order, step_numbers

STEP_ROLE = QtCore.Qt.ItemDataRole.UserRole


class Navigator(QtWidgets.QTreeWidget):
    """Stages as top-level items, their steps as children; selecting a step goes there."""

    def __init__(self, model, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("navigator")
        self.setHeaderHidden(True)
        self.setUniformRowHeights(True)
        self.items: list[QtWidgets.QTreeWidgetItem] = []
        self._key = None                # the key being handled (Up onto a stage header goes back)
        for n, (stage, title, indices) in enumerate(stages_in_order(), start=1):
            top = QtWidgets.QTreeWidgetItem(self, [f"{n}  {title}"])
            top.setData(0, STEP_ROLE, indices[0])
            f = top.font(0)
            f.setBold(True)
            top.setFont(0, f)
            for i in indices:
                child = QtWidgets.QTreeWidgetItem(top, [f"{step_numbers()[i]}  {model.steps[i].title}"])
                child.setData(0, STEP_ROLE, i)
                child.setToolTip(0, model.steps[i].title)
                self.items.append(child)
        self.expandAll()
        self.setMinimumWidth(150)     # narrow: the maps own the window (titles elide, tooltips have them)
        self.currentItemChanged.connect(self._on_current)
        model.step_changed.connect(self._on_step)
        self._on_step(model.index)

    def keyPressEvent(self, event) -> None:
        self._key = event.key()
        try:
            super().keyPressEvent(event)
        finally:
            self._key = None

    def _on_current(self, item, previous) -> None:
        if item is None:
            return
        index = item.data(0, STEP_ROLE)
        if (item.parent() is None and self._key == QtCore.Qt.Key.Key_Up and previous is not None
                and previous.data(0, STEP_ROLE) == index):
            index -= 1          # Up from a stage's first step onto its header: the step before
        self.model.go(index)
        if self.currentItem() is not self.items[self.model.index]:
            self._on_step(self.model.index)     # a stage header stands for its first step

    def _on_step(self, index: int) -> None:
        with QtCore.QSignalBlocker(self):
            self.setCurrentItem(self.items[index])
        self.scrollToItem(self.items[index])


class StepBar(QtWidgets.QWidget):
    """◀ Back   7 / 33   Next ▶, with the current step's title."""

    def __init__(self, model, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.back = QtWidgets.QPushButton("◀ Back", objectName="backButton")
        self.next = QtWidgets.QPushButton("Next ▶", objectName="nextButton")
        for b in (self.back, self.next):
            b.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)   # keys stay with the window
        self.counter = QtWidgets.QLabel(objectName="stepCounter")
        self.counter.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.title = QtWidgets.QLabel(objectName="stepBarTitle")
        self.back.clicked.connect(model.back)
        self.next.clicked.connect(model.next)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        lay.addWidget(self.title, 1)
        lay.addWidget(self.back)
        lay.addWidget(self.counter)
        lay.addWidget(self.next)
        model.step_changed.connect(self._on_step)
        self._on_step(model.index)
        self._fix_counter_width()

    def _fix_counter_width(self) -> None:
        """The counter as wide as its widest text ("33 / 33"), so Back/Next never move under the
        mouse when "9 / 33" becomes "10 / 33"."""
        n = len(self.model.steps)
        self.counter.setFixedWidth(self.counter.fontMetrics().horizontalAdvance(f"{n} / {n}") + 12)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QtCore.QEvent.Type.FontChange:    # present mode: a larger counter text
            self._fix_counter_width()

    def _on_step(self, index: int) -> None:
        n = len(self.model.steps)
        self.counter.setText(f"{index + 1} / {n}")
        self.title.setText(self.model.steps[index].title)
        self.back.setEnabled(index > 0)
        self.next.setEnabled(index < n - 1)
