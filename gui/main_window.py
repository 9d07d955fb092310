"""The main window: parameters on top, navigator | step | explanation, step bar, status bar.

All actions live in one registry (``self.actions``, name -> QAction) that builds the menus
and carries the shortcuts (a test checks them). The heatmap view imports pyqtgraph, so it is
created after the window is on screen (:meth:`finish_setup`); a "Computing…" placeholder
stands in until the first trace arrives.
"""
from __future__ import annotations

import json

from PySide6 import QtCore, QtGui, QtWidgets

from gui import exporting
from gui.explain import ExplanationView
from gui.navigator import Navigator, StepBar
from gui.params import ParamPanel

Key = QtCore.Qt.Key
QKS = QtGui.QKeySequence


def _seq(*keys) -> list[QtGui.QKeySequence]:
    return [k if isinstance(k, QtGui.QKeySequence) else QKS(k) for k in keys]


class MainWindow(QtWidgets.QMainWindow):
    export_finished = QtCore.Signal(str)     # message of a finished "Export all" (tests wait on it)

    def __init__(self, controller, settings: QtCore.QSettings | None = None,
                 parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.settings = settings if settings is not None else QtCore.QSettings()
        self.setWindowTitle("Attention Stepper")
        self.resize(1400, 860)
        self.step_view = None
        self.export_job = None

        self.params = ParamPanel(controller)
        self.navigator = Navigator(controller)
        self.explanation = ExplanationView(controller)
        self.step_bar = StepBar(controller)
        self.placeholder = QtWidgets.QLabel("Computing…", objectName="placeholder")
        self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        f = self.placeholder.font()
        f.setPointSizeF(f.pointSizeF() * 1.6)
        self.placeholder.setFont(f)
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.placeholder)

        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.navigator)
        self.splitter.addWidget(self.stack)
        self.splitter.addWidget(self.explanation)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([250, 880, 270])
        central = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.params)
        lay.addWidget(self.splitter, 1)
        lay.addWidget(self.step_bar)
        self.setCentralWidget(central)

        self.status_info = QtWidgets.QLabel(objectName="statusInfo")
        self.busy_label = QtWidgets.QLabel(objectName="busyLabel")
        self.statusBar().addPermanentWidget(self.busy_label)
        self.statusBar().addPermanentWidget(self.status_info)

        self.actions: dict[str, QtGui.QAction] = {}
        self._build_actions()

        controller.trace_changed.connect(self._on_trace)
        controller.step_changed.connect(lambda _i: self._update_status())
        controller.busy.connect(lambda b: self.busy_label.setText("computing…" if b else ""))
        controller.error.connect(self._on_error)
        controller.notice.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self._restore_geometry()

    # ---- actions and menus ---------------------------------------------------------------
    def _action(self, name: str, text: str, slot, shortcuts=(), tip: str = "") -> QtGui.QAction:
        act = QtGui.QAction(text, self)
        act.setObjectName(name)
        if shortcuts:
            act.setShortcuts(_seq(*shortcuts))
        act.setStatusTip(tip or text.rstrip("…"))
        act.triggered.connect(slot)
        self.actions[name] = act
        self.addAction(act)          # shortcuts work even while the menu bar is hidden
        return act

    def _build_actions(self) -> None:
        c = self.controller
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self._action("export_matrix", "Export matrix as CSV…", self.export_matrix,
                                         ["Ctrl+E"], "Export the matrix under focus (click a heatmap to focus it)"))
        file_menu.addAction(self._action("export_all", "Export all as CSV…", self.export_all,
                                         ["Ctrl+Shift+E"], "Export every intermediate of the trace, with manifest.json"))
        file_menu.addAction(self._action("export_all_npy", "Export all as NumPy (.npy)…",
                                         lambda: self.export_all("npy"), (),
                                         "Export every intermediate as one .npy file each, with manifest.json"))
        file_menu.addAction(self._action("export_all_npz", "Export all as NumPy archive (.npz)…",
                                         lambda: self.export_all("npz"), (),
                                         "Export every intermediate into one trace.npz, with manifest.json"))
        file_menu.addAction(self._action("save_image", "Save image…", self.save_image, [QKS.StandardKey.Save]))
        file_menu.addSeparator()
        file_menu.addAction(self._action("quit", "Quit", self.close, ["Ctrl+Q"]))
        view = self.menuBar().addMenu("&View")
        view.addAction(self._action("next", "Next step", c.next, [Key.Key_Right, Key.Key_PageDown]))
        view.addAction(self._action("back", "Previous step", c.back, [Key.Key_Left, Key.Key_PageUp]))
        view.addAction(self._action("first", "First step", c.first, [Key.Key_Home]))
        view.addAction(self._action("last", "Last step", c.last, [Key.Key_End]))
        view.addSeparator()
        view.addAction(self._action("book", "Book preset", c.use_book, ["Ctrl+B"],
                                    "Restore the chapter's settings for every step"))
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("about", "About Attention Stepper", self.about, ["F1"]))

    # ---- slots ---------------------------------------------------------------------------
    def finish_setup(self) -> None:
        """Create the heatmap view (imports pyqtgraph); called once the window is shown."""
        if self.step_view is not None:
            return
        from gui.step_view import StepView
        self.step_view = StepView(self.controller)
        self.step_view.hovered.connect(lambda text: self.statusBar().showMessage(text.split("\n")[0], 8000))
        self.step_view.focus_changed.connect(self._on_focus)
        self.stack.addWidget(self.step_view)
        from gui.features import install
        install(self)                    # inspector, code, inputs, equivalences, lessons, present
        self.navigator.setFocus()        # arrow keys step; the text field takes them only when clicked
        if self.controller.has_trace:
            self.stack.setCurrentWidget(self.step_view)

    def _on_focus(self) -> None:
        focused = self.step_view.focused()
        if focused:
            data, k = focused
            head = f" ({data.maps[k].title})" if data.maps[k].title else ""
            self.statusBar().showMessage(
                f"Focused {data.key[0]}.{data.key[1]}{head}: File → Export matrix as CSV (Ctrl+E) writes it", 8000)

    def _on_trace(self) -> None:
        self.finish_setup()
        self.stack.setCurrentWidget(self.step_view)
        self._update_status()

    def _update_status(self) -> None:
        t = self.controller.trace
        if t is None:
            return
        cfg = t.config
        self.status_info.setText(
            f"{t.device.upper()} · {len(t.tokens)} tokens · d_out {cfg.d_out} · {cfg.num_heads} heads · "
            f"trace {t.compute_ms:.1f} ms")

    def _on_error(self, field: str, message: str) -> None:
        self.statusBar().showMessage(f"{field}: {message}" if field else message, 15000)
        if not self.controller.has_trace and not self.controller.is_busy():
            self.placeholder.setText(f"Could not compute the trace:\n{message}")

    def export_matrix(self) -> None:
        if self.step_view is not None:
            self._report(exporting.export_matrix(self, self.controller, self.step_view))

    def export_all(self, fmt: str = "csv") -> None:
        if self.export_job is not None:
            self._report("An export is already running")
            return
        job = exporting.start_export_all(self, self.controller, fmt if isinstance(fmt, str) else "csv")
        if isinstance(job, str):
            self._report(job)
            return
        self.export_job = job
        self.busy_label.setText("exporting…")
        job.finished_with.connect(self._on_export_done)

    def _on_export_done(self, message: str) -> None:
        if self.export_job is not None:
            self.export_job.wait()
            self.export_job.deleteLater()
        self.export_job = None
        self.busy_label.setText("")
        self._report(message)
        self.export_finished.emit(message)

    def save_image(self) -> None:
        if self.step_view is not None:
            self._report(exporting.save_image(self, self.step_view, self.controller.index))

    def _report(self, message: str) -> None:
        if message:
            self.statusBar().showMessage(message, 15000)

    def about(self) -> None:
        QtWidgets.QMessageBox.about(
            self, "About Attention Stepper",
            "<h3>Attention Stepper</h3><p>Step through every intermediate of self-attention, "
            "from dot products to causal multi-head attention, with the numbers of chapter 3 of "
            "<i>Build a Large Language Model (From Scratch)</i> by S. Raschka.</p>"
            "<p>Keys: → / PageDown next, ← / PageUp back, Home / End. Hover a cell for its meaning.</p>")

    # ---- settings --------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geo = self.settings.value("window/geometry")
        if isinstance(geo, (QtCore.QByteArray, bytes)):
            self.restoreGeometry(geo)
        state = self.settings.value("window/splitter")
        if isinstance(state, (QtCore.QByteArray, bytes)):
            self.splitter.restoreState(state)

    def saved_config(self) -> tuple[str, dict | None, int]:
        """(mode, params, step) from QSettings, defaulting to the book."""
        mode = str(self.settings.value("config/mode", "book"))
        try:
            params = json.loads(str(self.settings.value("config/params", "null")))
        except ValueError:
            params = None
        try:
            step = int(self.settings.value("config/step", 0))
        except (TypeError, ValueError):
            step = 0
        return mode, params if isinstance(params, dict) else None, step

    def save_settings(self) -> None:
        c = self.controller
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        self.settings.setValue("config/mode", c.mode)
        self.settings.setValue("config/params", json.dumps(c.params if c.mode == "custom" else None))
        self.settings.setValue("config/step", c.index)
        self.settings.sync()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if self.export_job is not None:          # cancel: the export leaves no partial files
            self.export_job.cancel()
            self.export_job.wait()
        self.save_settings()
        self.controller.shutdown()
        event.accept()
