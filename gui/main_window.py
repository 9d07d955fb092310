"""The main window: parameters on top, navigator | step maps, the status bar (with Back/Next), and the
explaining tools as docks: one tabbed side area on the right (Explanation, Cell inspector, Code:
the maps keep at least 65 % of the width at 1366 px; F11 gives them all of it) and Edit inputs,
Equivalences and Why 1/√d_k tabbed at the bottom, hidden until opened from the View menu.

Every action and menu is built here, in one table (:meth:`_build_actions`): the registry
``self.actions`` (name -> QAction) carries each shortcut and tooltip (a test checks them).
Views get the controller's view model (``controller.model``); the editors that request new
traces (parameters, inputs) get the controller. The heatmap views import pyqtgraph, so they
and their docks are created after the window is on screen (:meth:`finish_setup`); a
"Computing…" placeholder stands in until the first trace arrives, and the dock actions are
enabled then.
"""
from __future__ import annotations

import json

from PySide6 import QtCore, QtGui, QtWidgets

from gui import exporting, lessons, train_window
from gui.explain import ExplanationView
from gui.navigator import Navigator, StepBar
from gui.params import ParamPanel
from gui.external_bars import BARS
from gui.external_stage import ExternalController
from gui.pretrained_bar import PretrainedBar
from gui.present import Presenter

Key = QtCore.Qt.Key
QKS = QtGui.QKeySequence
Area = QtCore.Qt.DockWidgetArea
DOCK_STATE_KEY = "window/docks"
DOCK_STATE_VERSION = 2       # 2: the explanation joined the inspector and code as a tab (round 3)
SPLITTER_KEY = "window/splitter2"    # navigator | maps (the round-2 key held three panes)
TOUR_KEY = "help/tour_shown"
NAVIGATOR_SHARE = 0.125      # of the window's width, the navigator (160–260 px)
SIDE_SHARE = 0.21            # of the window's width, the side area's tabs (explanation, inspector, code)
MIN_SIDE_DOCK_WIDTH = 220   # px of the side area's docks
MIN_MAPS_HEIGHT = 300        # px the step maps keep whatever docks are open
# actions whose keys work from every window of the app (Train, Cost, a map's own window)
APP_WIDE = frozenset({"quit", "shortcuts", "about", "train", "cost"})
BUSY_LABEL_DELAY_MS = 250    # "computing…" shows once a computation has taken this long
# the docks: key -> (action name, title, area); the bottom ones share one tabbed area
DOCKS = {
    "explanation": ("show_explanation", "Explanation", Area.RightDockWidgetArea),
    "inspector": ("show_inspector", "Cell inspector", Area.RightDockWidgetArea),
    "code": ("show_code", "Code", Area.RightDockWidgetArea),
    "inputs": ("edit_inputs", "Edit inputs", Area.BottomDockWidgetArea),
    "equivalences": ("show_equivalences", "Equivalences", Area.BottomDockWidgetArea),
    "scaling": ("show_scaling", "Why 1/√d_k", Area.BottomDockWidgetArea),
}


def _seq(*keys) -> list[QtGui.QKeySequence]:
    return [k if isinstance(k, QtGui.QKeySequence) else QKS(k) for k in keys]


def starting_size(available: QtCore.QSize) -> QtCore.QSize:
    """The first window's size: the screen's available area less the window frame (title bar
    ~32 px, borders), so the Back/Next bar and status bar are on screen and the maps get all the
    room the screen has (1366 × 768 and 1920 × 1080 alike)."""
    return QtCore.QSize(available.width() - 16, available.height() - 40)


def pane_widths(width: int) -> tuple[int, int]:
    """(navigator, side area) widths in px for a window ``width`` px wide: the maps get the rest,
    at least 65 % of it."""
    return int(min(260, max(160, width * NAVIGATOR_SHARE))), int(max(MIN_SIDE_DOCK_WIDTH, width * SIDE_SHARE))


def _available(widget: QtWidgets.QWidget | None = None) -> QtCore.QRect:
    screen = (widget.screen() if widget is not None else None) or QtGui.QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else QtCore.QRect(0, 0, 1366, 768)


def _scrolling(widget: QtWidgets.QWidget) -> QtWidgets.QScrollArea:
    """``widget`` in a frameless scroll area: a dock whose content needs more room than it has
    scrolls, instead of pushing the step maps aside or growing the window (and its width stays
    what the learner set, step after step)."""
    area = QtWidgets.QScrollArea(objectName=f"{widget.objectName() or 'dock'}Scroll")
    area.setWidgetResizable(True)
    area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    area.setWidget(widget)
    area.setMinimumSize(60, 60)
    return area


class MainWindow(QtWidgets.QMainWindow):
    export_finished = QtCore.Signal(str)     # message of a finished "Export all" (tests wait on it)

    def __init__(self, controller, settings: QtCore.QSettings | None = None,
                 parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.settings = settings if settings is not None else QtCore.QSettings()
        self.model = controller.model
        self.setWindowTitle("Attention Stepper")
        self.resize(starting_size(_available()))
        self.step_view = None
        self.cost_view = None                   # View → Cost of attention (its own window, made on demand)
        self.export_job = None
        self.docks: dict[str, QtWidgets.QDockWidget] = {}     # filled by finish_setup
        self.inspector = self.code_panel = self.inputs_editor = None
        self.equivalences = self.scaling_view = None
        self.train_view = None                              # gui.train_window: made on first use
        self.pretrained_panel = None             # stage 5's gallery and token lines (finish_setup)

        self.params = ParamPanel(controller)
        self.navigator = Navigator(self.model)
        self.explanation = ExplanationView(self.model)
        self.step_bar = StepBar(self.model)
        self.presenter = Presenter(self.model, self)
        self.placeholder = QtWidgets.QLabel("Computing…", objectName="placeholder")
        self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        f = self.placeholder.font()
        f.setPointSizeF(f.pointSizeF() * 1.6)
        self.placeholder.setFont(f)
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.setMinimumHeight(MIN_MAPS_HEIGHT)   # docks never squash the maps to strips

        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.navigator)
        self.splitter.addWidget(self.stack)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self._reset_splitter()
        self._maps_only: dict[str, bool] | None = None   # F11: which panes were open before
        central = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.params)
        self.pretrained_bar = PretrainedBar(controller.pretrained)    # stage 5's controls
        self.pretrained_bar.setVisible(False)
        lay.addWidget(self.pretrained_bar)
        # stages 6–8 (decode, tiled attention, RoPE): computed on their first visit, one bar each
        self.external = {s: ExternalController(self.model, s, self) for s in self.model.external}
        self.external_bars = {s: BARS[s](ctl) for s, ctl in self.external.items()}
        for bar in self.external_bars.values():
            bar.setVisible(False)
            lay.addWidget(bar)
        self.kv_meter = None                                   # View → KV-cache memory meter (on demand)
        lay.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self.status_info = QtWidgets.QLabel(objectName="statusInfo")
        self.status_info.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.busy_label = QtWidgets.QLabel(objectName="busyLabel")
        # Back / 7 of 45 / Next in the status bar's row: the maps get the height a row of its own took
        self.step_bar.title.hide()                   # the step view's title names the step
        self.step_bar.layout().setContentsMargins(0, 0, 6, 0)
        self.step_bar.setSizePolicy(QtWidgets.QSizePolicy.Policy.Maximum, QtWidgets.QSizePolicy.Policy.Preferred)
        self.statusBar().addPermanentWidget(self.busy_label)
        self.statusBar().addPermanentWidget(self.status_info)

        self.actions: dict[str, QtGui.QAction] = {}
        self._build_actions()
        self.statusBar().addPermanentWidget(self.step_bar)    # rightmost: no other text moves Back/Next

        m = self.model
        m.trace_changed.connect(self._on_trace)
        m.step_changed.connect(lambda _i: self._update_status())
        m.step_changed.connect(lambda _i: self._drop_focus_line())
        m.hover_changed.connect(self._on_hover)
        m.focus_changed.connect(self._on_focus)
        m.cell_clicked.connect(lambda *_a: self.show_dock("inspector") if self.docks else None)
        # "computing…" only for a computation that lasts: a quick one would flash it (and lay the
        # status bar out and repaint it twice per change, inside the change → redrawn time)
        self._busy_timer = QtCore.QTimer(self, singleShot=True, interval=BUSY_LABEL_DELAY_MS)
        self._busy_timer.timeout.connect(
            lambda: self.busy_label.setText("computing…") if self.controller.is_busy() and self.export_job is None
            else None)
        controller.busy.connect(self._on_busy)
        controller.error.connect(self._on_error)
        # a fixed value drops the error it caused (not a notice shown since, and not the reason why
        # saved settings or a lesson fell back to the Book: that one stays to be read)
        controller.error_cleared.connect(lambda: self.statusBar().clearMessage()
                                         if controller.mode == "custom"
                                         and self.statusBar().currentMessage() == getattr(self, "_error_shown", None)
                                         else None)
        controller.notice.connect(lambda text: self.statusBar().showMessage(text, 10000))
        pre = controller.pretrained
        # stage 5's progress goes to the permanent status label (_update_status), errors as messages
        pre.error.connect(lambda text: self.statusBar().showMessage(text, 15000))
        m.step_changed.connect(lambda _i: self._show_page())
        m.pretrained_changed.connect(self._on_pretrained)
        # stage 5's head (Head: 0…11 or all 12) redraws the token lines at once (the trace holds every head)
        m.head_changed.connect(lambda _h: self._on_pretrained() if m.step.stage == "pretrained" else None)
        for ext in self.external.values():
            ext.error.connect(lambda text: self.statusBar().showMessage(text, 15000))
        m.external_changed.connect(lambda s: self._update_status() if m.step.stage == s else None)
        self._restore_geometry()
        from gui.focus import FocusFrame
        from gui.keys import install_step_keys
        self.focus_frame = FocusFrame(self, fallback=self.navigator)   # where the keys go, visibly
        self._step_keys = install_step_keys(self)       # stepping keys wherever the focus is

    # ---- actions and menus: the one registry ----------------------------------------------
    def _action(self, name: str, text: str, slot, shortcuts=(), tip: str = "",
                checkable: bool = False) -> QtGui.QAction:
        act = QtGui.QAction(text, self)
        act.setObjectName(name)
        act.setCheckable(checkable)
        if shortcuts:
            act.setShortcuts(_seq(*shortcuts))
        tip = tip or text.rstrip("…")
        act.setStatusTip(tip)
        shortcut = act.shortcut().toString(QKS.SequenceFormat.NativeText)
        act.setToolTip(f"{tip} ({shortcut})" if shortcut else tip)
        act.triggered.connect(slot)
        if name in APP_WIDE:      # from the Train and Cost windows too
            act.setShortcutContext(QtCore.Qt.ShortcutContext.ApplicationShortcut)
        self.actions[name] = act
        self.addAction(act)          # shortcuts work even while the menu bar is hidden
        return act

    def _build_actions(self) -> None:
        """Every menu and action of the window, in menu order."""
        c, m, p = self.controller, self.model, self.presenter
        A = self._action
        menus = {
            "&File": [
                A("open_lesson", "Open lesson…", lambda: self._report(lessons.open_lesson(self)), ["Ctrl+O"],
                  "Open a lesson file: its settings, edited inputs and step"),
                A("save_lesson", "Save lesson…", lambda: self._report(lessons.save_lesson(self)), ["Ctrl+Shift+S"],
                  "Save the settings, edited inputs and current step as a lesson file"),
                None,
                A("export_matrix", "Export matrix as CSV…", self.export_matrix, ["Ctrl+E"],
                  "Export the matrix under focus (click a heatmap to focus it)"),
                A("export_all", "Export all as CSV…", self.export_all, ["Ctrl+Shift+E"],
                  "Export every intermediate of the trace, with manifest.json"),
                A("export_all_npy", "Export all as NumPy (.npy)…", lambda: self.export_all("npy"), (),
                  "Export every intermediate as one .npy file each, with manifest.json"),
                A("export_all_npz", "Export all as NumPy archive (.npz)…", lambda: self.export_all("npz"), (),
                  "Export every intermediate into one trace.npz, with manifest.json"),
                A("save_image", "Save image…", self.save_image, [QKS.StandardKey.Save]),
                None,
                A("quit", "Quit", self.close, ["Ctrl+Q"]),
            ],
            "&View": [
                A("next", "Next step", m.next, [Key.Key_Right, Key.Key_PageDown]),
                A("back", "Previous step", m.back, [Key.Key_Left, Key.Key_PageUp]),
                A("first", "First step", m.first, [Key.Key_Home]),
                A("last", "Last step", m.last, [Key.Key_End]),
                None,
                A("book", "Book preset", c.use_book, ["Ctrl+B"], "Restore the chapter's settings for every step"),
                A("pretrained_example", "Pretrained model: ready example", self.pretrained_example, ["Ctrl+Shift+P"],
                  "Stage 5 on “The old dog chased the quick fox which bit him” (loads all-MiniLM-L6-v2 on first use)"),
                None,
                A("maps_only", "Maps full width", self.toggle_maps_only, ["F11"],
                  "Give the maps the whole width (hides the steps list and the side tabs); F11 again brings them back",
                  checkable=True),
                self._dock_action("explanation", "Ctrl+Shift+X", "Show what the step computes and why, with its numbers"),
                self._dock_action("inspector", "Ctrl+Shift+I", "Show how a clicked cell's number is made"),
                self._dock_action("code", "Ctrl+Shift+C", "Show the torch lines behind the matrix under focus"),
                self._dock_action("inputs", "Ctrl+I",
                                  "Edit the embeddings and W_query/W_key/W_value; every step updates"),
                self._dock_action("equivalences", "Ctrl+Shift+D",
                                  "Difference heatmaps of the chapter's equal implementations, with max |diff|"),
                self._dock_action("scaling", "Ctrl+Shift+K",
                                  "Remove the 1/√d_k scaling and see how peaked softmax gets as d_k grows"),
                A("train", "Train attention…", lambda: train_window.show_train(self), ["Ctrl+Shift+T"],
                  "Train the chapter's MultiHeadAttention on a toy task and watch its heads learn"),
                A("cost", "Cost of attention…", self.show_cost, ["Ctrl+Shift+M"],
                  "Measure how time and memory grow with the tokens (T²), trace beside fused attention"),
                A("kv_meter", "KV-cache memory meter…", self.show_kv_meter, ["Ctrl+Shift+V"],
                  "KV-cache bytes of MHA, GQA, MQA, MLA and SWA side by side, against the context length"),
                A("reset_inputs", "Reset inputs to the preset",
                  lambda: self.inputs_editor.reset() if self.inputs_editor is not None else None,
                  ["Ctrl+Shift+R"], "Drop every edit of the embeddings and weights"),
            ],
            "&Present": [
                A("font_larger", "Larger text", lambda: self._zoom(p.larger), ["Ctrl+=", "Ctrl++"],
                  "Make every text larger (for a projector)"),
                A("font_smaller", "Smaller text", lambda: self._zoom(p.smaller), ["Ctrl+-"], "Make every text smaller"),
                A("reset_layout", "Starting layout", self.reset_layout, ["Ctrl+0"],
                  "Back to the starting window size, docks and text size"),
                None,
                A("play", "Play", p.toggle, ["F5"], "Advance one step every few seconds (F5 pauses)"),
            ],
            "&Help": [
                A("shortcuts", "Keyboard shortcuts", self.show_shortcuts, ["F1", "Ctrl+/"],
                  "Every action of the window with its keys"),
                A("tour", "Tour of the window", lambda: self.start_tour(), ["Shift+F1"],
                  "A short tour: navigator, a map, hover, the inspector, the code panel, Book"),
                None,
                A("about", "About Attention Stepper", self.about, ["Ctrl+F1"]),
            ],
        }
        self.menu_actions = {title.replace("&", ""): [a for a in entries if a is not None]
                             for title, entries in menus.items()}      # the shortcuts sheet lists these
        for title, entries in menus.items():
            menu = self.menuBar().addMenu(title)
            menu.setToolTipsVisible(True)
            for act in entries:
                if act is None:
                    menu.addSeparator()
                else:
                    menu.addAction(act)
        for name in ("reset_inputs",) + tuple(v[0] for v in DOCKS.values()):
            self.actions[name].setEnabled(False)            # until finish_setup builds the docks
        play = self.actions["play"]
        p.playing_changed.connect(lambda on: play.setText("Pause" if on else "Play"))
        button = QtWidgets.QToolButton(objectName="playButton")
        button.setDefaultAction(play)
        button.setAutoRaise(True)
        self.statusBar().addPermanentWidget(button)       # Play/Pause and the interval, without a toolbar row
        self.statusBar().addPermanentWidget(p.interval_box)

    def _dock_action(self, key: str, shortcut: str, tip: str) -> QtGui.QAction:
        """Show/hide a dock (checked while it is open), like the dock's own toggleViewAction."""
        name, title, _area = DOCKS[key]

        def toggle(checked: bool) -> None:
            dock = self.docks.get(key)
            if dock is None:
                return
            if not checked and dock.isVisible() and dock.visibleRegion().isEmpty():
                checked = True                 # open but behind another tab: asking raises it
                self.actions[name].setChecked(True)
            if checked:
                self.show_dock(key)
            else:
                dock.close()
        return self._action(name, title, toggle, [shortcut], tip, checkable=True)

    def show_dock(self, key: str) -> QtWidgets.QDockWidget:
        """Open the dock ``key`` in front of its tab group, without growing the window."""
        dock = self.docks[key]
        size = self.size()
        dock.show()
        dock.raise_()
        QtCore.QTimer.singleShot(0, dock.raise_)   # a freshly tabified dock gets its tab on the next pass
        if self.dockWidgetArea(dock) == Area.BottomDockWidgetArea:   # a third of the height, the maps keep the rest
            self.resizeDocks([dock], [max(160, self.height() // 3)], QtCore.Qt.Orientation.Vertical)
        self._keep_size(size)
        return dock

    def _default_docks(self) -> None:
        """The starting docks: the side area's tabs (explanation in front), the bottom tabs closed."""
        d = self.docks
        side = ("explanation", "inspector", "code")
        for key, (name, _title, _area) in DOCKS.items():
            d[key].setVisible(key in side)
            self.actions[name].setChecked(key in side)
        self.resizeDocks([d["explanation"]], [pane_widths(self.width())[1]], QtCore.Qt.Orientation.Horizontal)
        d["explanation"].raise_()

    def _reset_splitter(self) -> None:
        nav = pane_widths(self.width())[0]
        self.splitter.setSizes([nav, max(1, self.width() - nav)])

    def toggle_maps_only(self, checked: bool | None = None) -> None:
        """F11: the maps take the whole width (the navigator and the side area's docks hide); again:
        what was open comes back. Stepping keys and Back/Next keep working."""
        act = self.actions["maps_only"]
        on = self._maps_only is None if checked is None else bool(checked)
        if on and self._maps_only is None:
            side = {k: d.isVisible() for k, d in self.docks.items()
                    if self.dockWidgetArea(d) == Area.RightDockWidgetArea}
            self._maps_only = {"navigator": self.navigator.isVisible(), **side}
            self.navigator.hide()
            for key in side:
                self.docks[key].hide()
        elif not on and self._maps_only is not None:
            was, self._maps_only = self._maps_only, None
            self.navigator.setVisible(was.pop("navigator"))
            for key, visible in was.items():
                self.docks[key].setVisible(visible)
        act.setChecked(self._maps_only is not None)

    def _keep_size(self, size: QtCore.QSize) -> None:
        """Undo a growth of the window that opening a dock caused (the docks give way instead)."""
        def shrink() -> None:
            if not (self.isMaximized() or self.isFullScreen()) and self.size() != size:
                self.resize(size)
        QtCore.QTimer.singleShot(0, shrink)

    def _build_docks(self) -> None:
        """The explaining tools (they import pyqtgraph): created once the window is on screen."""
        from gui.code_panel import CodePanel
        from gui.equivalence_view import EquivalenceView
        from gui.inspector import Inspector
        from gui.scaling_view import ScalingView
        from gui.tables import InputsEditor
        m = self.model
        self.inspector = Inspector(m)
        self.code_panel = CodePanel(m)
        self.inputs_editor = InputsEditor(self.controller)
        self.equivalences = EquivalenceView(m)
        self.scaling_view = ScalingView(m)
        widgets = {"explanation": self.explanation, "inspector": self.inspector, "code": self.code_panel, "inputs": self.inputs_editor,
                   "equivalences": self.equivalences, "scaling": self.scaling_view}
        for key, (name, title, area) in DOCKS.items():
            dock = QtWidgets.QDockWidget(title, self)
            dock.setObjectName(f"{name}Dock")
            widget = widgets[key]
            dock.setWidget(widget if isinstance(widget, QtWidgets.QAbstractScrollArea) else _scrolling(widget))
            if area == Area.RightDockWidgetArea:        # readable, however narrow the window gets
                dock.widget().setMinimumWidth(MIN_SIDE_DOCK_WIDTH)
            dock.setAllowedAreas(Area.AllDockWidgetAreas)
            self.addDockWidget(area, dock)
            act = self.actions[name]
            dock.toggleViewAction().toggled.connect(act.setChecked)   # Qt tracks open/closed there
            self.docks[key] = dock
        d = self.docks
        self.setTabPosition(Area.RightDockWidgetArea, QtWidgets.QTabWidget.TabPosition.North)
        self.tabifyDockWidget(d["explanation"], d["inspector"])     # one side area, tabs on top
        self.tabifyDockWidget(d["inspector"], d["code"])
        self.tabifyDockWidget(d["inputs"], d["equivalences"])
        self.tabifyDockWidget(d["equivalences"], d["scaling"])
        self._default_docks()
        self.start_state = self.saveState(DOCK_STATE_VERSION)     # what Present → Starting layout restores
        state = self.settings.value(DOCK_STATE_KEY)
        if isinstance(state, (QtCore.QByteArray, bytes)):
            self.restoreState(state, DOCK_STATE_VERSION)     # a stale or foreign state is ignored
        for key, (name, _title, _area) in DOCKS.items():
            self.actions[name].setChecked(d[key].toggleViewAction().isChecked())
            self.actions[name].setEnabled(True)
        self.actions["reset_inputs"].setEnabled(True)
        status = self.statusBar()
        self.inputs_editor.message.connect(lambda text: status.showMessage(text, 10000))
        self.code_panel.copied.connect(lambda text: status.showMessage(text, 8000))

    # ---- slots ---------------------------------------------------------------------------
    def finish_setup(self) -> None:
        """Create the heatmap view (imports pyqtgraph); called once the window is shown."""
        if self.step_view is not None:
            return
        from gui.step_view import StepView
        self.step_view = StepView(self.model)
        self.stack.addWidget(self.step_view)
        self._build_docks()              # inspector, code, inputs, equivalences, why 1/√d_k
        from gui.pretrained_view import PretrainedPanel
        self.pretrained_panel = PretrainedPanel(lambda _text: None)     # fed by the stage's controller
        self.pretrained_panel.hide_special.setVisible(False)         # the bar above has the option
        self.pretrained_panel.head_clicked.connect(self.controller.pretrained.open_head)
        self.pretrained_panel.hide_special.toggled.connect(
            lambda on: self.controller.pretrained.set_options(hide_special=bool(on)))
        self.stack.addWidget(self.pretrained_panel)
        from gui.rope_dial import RopeDial
        self.rope_dial = RopeDial(self.model)                        # stage 8's dial (a step with view "dial")
        self.stack.addWidget(self.rope_dial)
        self.navigator.setFocus()        # arrow keys step; the text field takes them only when clicked
        self._show_page()

    def _on_hover(self, text: str) -> None:
        """The hovered cell's first line in the status bar; cleared (only a hover line, not another
        message) when the model drops the hover because the input, step or settings changed."""
        bar = self.statusBar()
        if text:
            self._hover_line = text.split("\n")[0]
            bar.showMessage(self._hover_line, 8000)
        elif bar.currentMessage() and bar.currentMessage() == getattr(self, "_hover_line", None):
            bar.clearMessage()

    def _on_focus(self) -> None:
        focused = self.model.focused()
        if focused:
            data, k = focused
            head = f" ({data.maps[k].title})" if data.maps[k].title else ""
            self._focus_line = f"Focused {data.key[0]}.{data.key[1]}{head}: File → Export matrix as CSV (Ctrl+E) writes it"
            self.statusBar().showMessage(self._focus_line, 8000)

    def _drop_focus_line(self) -> None:
        """Another step: the "Focused …" line names a matrix no longer on screen."""
        bar = self.statusBar()
        if bar.currentMessage() and bar.currentMessage() == getattr(self, "_focus_line", None):
            bar.clearMessage()

    def _on_trace(self) -> None:
        self.finish_setup()
        self._show_page()
        self._update_status()

    def _show_page(self) -> None:
        """The step view, stage 5's gallery/token lines, or the placeholder; stage 5's bar."""
        step = self.model.step
        on_pretrained = step.stage == "pretrained"
        self.pretrained_bar.setVisible(on_pretrained)
        for stage, bar in self.external_bars.items():
            bar.setVisible(step.stage == stage)
        # the chapter's config drives none of 5…8 (6…8 may take the main text field's prompt from it)
        self.params.setVisible(not on_pretrained and step.stage not in self.external)
        if self.step_view is None:
            return
        if step.view == "dial" and self.pretrained_panel is not None:
            self.rope_dial.refresh()
            self.stack.setCurrentWidget(self.rope_dial)
        elif step.view and self.pretrained_panel is not None:
            self._on_pretrained()
            self.stack.setCurrentWidget(self.pretrained_panel)
            # each step its own view, the whole width (at 1366 px both side by side are too narrow)
            panel = self.pretrained_panel
            panel.show_view(step.view)
        elif on_pretrained or step.stage in self.external or self.model.has_trace:
            self.stack.setCurrentWidget(self.step_view)

    def _on_pretrained(self) -> None:
        """Stage 5's trace, gallery or status changed: the gallery page and the status line."""
        m, panel = self.model, self.pretrained_panel
        if panel is not None and m.pretrained_gallery is not None and panel.gallery is not m.pretrained_gallery:
            panel.show_gallery(m.pretrained_gallery)
        if panel is not None and m.pretrained is not None:
            cfg = m.pretrained.config
            panel.hide_special.blockSignals(True)
            panel.hide_special.setChecked(cfg.hide_special)
            panel.hide_special.blockSignals(False)
            panel.select(cfg.layer, m.head)           # None: all 12 heads of the layer
        if m.step.stage == "pretrained":
            self._update_status()

    def pretrained_example(self) -> None:
        """Stage 5's first step on the ready example (the model loads in the background)."""
        self.pretrained_bar.use_example()
        self.model.go(next(i for i, s in enumerate(self.model.steps) if s.stage == "pretrained"))

    def _update_status(self) -> None:
        t = self.model.trace
        if self.model.step.stage in self.external:
            self._set_status_info(self.model.external_status(self.model.step.stage))
            return
        if t is None:
            if self.model.step.stage == "pretrained":
                self._set_status_info(self.model.pretrained_status)
            return
        cfg = t.config
        if self.model.step.stage == "pretrained":
            self._set_status_info(f"{t.device.upper()} · all-MiniLM-L6-v2 · {len(t.tokens)} pieces · "
                                  f"layer {cfg.layer} · trace {t.compute_ms:.1f} ms")
            return
        self._set_status_info(
            f"{t.device.upper()} · {len(t.tokens)} tokens · d_out {cfg.d_out} · {cfg.num_heads} heads · "
            f"trace {t.compute_ms:.1f} ms")

    def _set_status_info(self, text: str) -> None:
        """The status line's right-hand text, in a label of fixed size that only grows: a new
        text ("trace 3.1 ms" → "12.4 ms") would otherwise re-lay the status bar out and repaint
        all of it in the frame that draws the new maps (Qt skips that for a fixed-size widget)."""
        label = self.status_info
        label.setText(text)
        hint = label.sizeHint()
        if hint.width() > label.maximumWidth() or hint.height() != label.maximumHeight():
            label.setFixedSize(max(hint.width(), label.minimumWidth()), hint.height())

    def _on_error(self, field: str, message: str) -> None:
        self._error_shown = f"{field}: {message}" if field else message
        self.statusBar().showMessage(self._error_shown, 15000)
        if not self.controller.has_trace and not self.controller.is_busy():
            self.placeholder.setText(f"Could not compute the trace:\n{message}")

    def export_matrix(self) -> None:
        if self.step_view is not None:
            self._report(exporting.export_matrix(self, self.model))

    def export_all(self, fmt: str = "csv") -> None:
        if self.export_job is not None:
            self._report("An export is already running")
            return
        job = exporting.start_export_all(self, self.model, fmt if isinstance(fmt, str) else "csv")
        if isinstance(job, str):
            self._report(job)
            return
        self.export_job = job
        self.busy_label.setText("exporting…")
        job.done.connect(self._on_export_done)

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self._busy_timer.start()
            return
        self._busy_timer.stop()
        if self.busy_label.text() == "computing…":
            self.busy_label.setText("")

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
            self._report(exporting.save_image(self, self.step_view, self.model.index))

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

    # ---- layout ------------------------------------------------------------------------------
    def _zoom(self, change) -> None:
        """Present mode's larger/smaller text, in the same window size (the content re-flows)."""
        size = self.size()
        change()
        self._keep_size(size)

    def fit_to(self, available: QtCore.QRect) -> None:
        """The starting size within ``available`` (a screen's available area), placed inside it."""
        size = starting_size(available.size())
        self.resize(size)
        frame = self.frameGeometry()
        frame.moveCenter(available.center())
        frame.moveTopLeft(QtCore.QPoint(max(frame.left(), available.left()), max(frame.top(), available.top())))
        self.move(frame.topLeft())

    def reset_layout(self) -> None:
        """View → Starting layout (Ctrl+0): the first window's size, docks, panes and text size."""
        self.reset_layout_for(_available(self))

    def reset_layout_for(self, available: QtCore.QRect) -> None:
        """The starting layout on a screen whose available area is ``available``."""
        self.presenter.reset_font()
        if self.isMaximized() or self.isFullScreen():
            self.showNormal()
        self.toggle_maps_only(False)
        self.fit_to(available)
        if self.docks:
            self.restoreState(self.start_state, DOCK_STATE_VERSION)     # areas and tab order
            self._default_docks()
        self._reset_splitter()

    def show_shortcuts(self) -> None:
        from gui.help import shortcuts_dialog
        dialog = shortcuts_dialog(self, self.menu_actions)
        dialog.show()
        self.shortcuts_sheet = dialog

    def start_tour(self, settings_key: bool = True):
        """The first-run tour (Help → Tour of the window); remembered as seen in QSettings."""
        from gui.help import Tour
        if getattr(self, "tour", None) is not None:
            self.tour.close()
        self.tour = Tour(self)
        self.tour.start()
        if settings_key:
            self.settings.setValue(TOUR_KEY, True)
        return self.tour

    def maybe_start_tour(self):
        """On the very first start only (python main.py; never in tests, which do not call it)."""
        if self.settings.value(TOUR_KEY, False) in (True, "true"):
            return None
        return self.start_tour()

    # ---- settings --------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geo = self.settings.value("window/geometry")
        if isinstance(geo, (QtCore.QByteArray, bytes)):
            self.restoreGeometry(geo)
        state = self.settings.value(SPLITTER_KEY)
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
        self.toggle_maps_only(False)     # the panes F11 hid are remembered as they were before it
        if self.docks:                   # which docks are open, and where
            self.settings.setValue(DOCK_STATE_KEY, self.saveState(DOCK_STATE_VERSION))
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue(SPLITTER_KEY, self.splitter.saveState())
        self.settings.setValue("config/mode", c.mode)
        self.settings.setValue("config/params", json.dumps(c.params if c.mode == "custom" else None))
        self.settings.setValue("config/step", c.index)
        self.settings.sync()

    def cost_device(self) -> str:
        """The device selected in the parameters, as the Cost view takes it (cpu, cuda or auto)."""
        device = str(getattr(self.model.config, "device", "cpu") or "cpu")
        return "cuda" if device.startswith("cuda") else device if device in ("cpu", "auto") else "cpu"

    def show_cost(self) -> None:
        """View → Cost of attention: its own window, kept (its measurements stay) and re-raised;
        made anew for another device when it is not measuring."""
        device = self.cost_device()
        view = self.cost_view
        if view is not None and view.runner.settings.device != device and not view.is_running():
            view.close()
            view.deleteLater()
            view = None
        if view is None:
            from core.cost import CostRunner, CostSettings   # torch: the Cost view measures it
            from gui.cost_view import CostView
            view = self.cost_view = CostView(CostRunner(CostSettings(device=device)))
            view.resize(1000, 640)
        view.show()
        view.raise_()
        view.activateWindow()

    def show_kv_meter(self) -> None:
        """View → KV-cache memory meter: a dialog, kept and re-raised."""
        if self.kv_meter is None:
            from gui.kv_meter import KVMeter
            self.kv_meter = KVMeter(self)
        self.kv_meter.show()
        self.kv_meter.raise_()
        self.kv_meter.activateWindow()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if self.cost_view is not None:           # its own window: cancel a run and wait for its thread
            self.cost_view.close()
        if self.export_job is not None:          # cancel: the export leaves no partial files
            self.export_job.cancel()
            self.export_job.wait()
        self.save_settings()
        QtWidgets.QApplication.instance().removeEventFilter(self._step_keys)
        train_window.shutdown(self)              # cancel a training: no thread left running
        self.controller.shutdown()
        for ext in self.external.values():
            ext.shutdown()
        event.accept()
