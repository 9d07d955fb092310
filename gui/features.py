"""The explaining tools around the stepper, installed into the main window as docks and actions.

Inspector and Code sit on the right (visible); Edit inputs, Equivalences and Why 1/√d_k share
the bottom area (hidden until opened from the View menu). Lessons go in the File menu; the
Present menu holds the font size and Play/Pause. Every action is registered in the window's
``actions`` registry with its shortcut and tooltip.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

Area = QtCore.Qt.DockWidgetArea


def _menu(window, title: str) -> QtWidgets.QMenu:
    for act in window.menuBar().actions():
        if act.menu() is not None and act.text().replace("&", "") == title:
            return act.menu()
    help_act = next((a for a in window.menuBar().actions() if a.text().replace("&", "") == "Help"), None)
    menu = QtWidgets.QMenu(f"&{title}", window)
    if help_act is not None:
        window.menuBar().insertMenu(help_act, menu)
    else:
        window.menuBar().addMenu(menu)
    return menu


def _dock(window, name: str, title: str, widget: QtWidgets.QWidget, area, shortcut: str, tip: str):
    dock = QtWidgets.QDockWidget(title, window)
    dock.setObjectName(f"{name}Dock")
    dock.setWidget(widget)
    dock.setAllowedAreas(Area.AllDockWidgetAreas)
    window.addDockWidget(area, dock)
    act = dock.toggleViewAction()
    act.setObjectName(name)
    act.setShortcut(QtGui.QKeySequence(shortcut))
    act.setStatusTip(tip)
    act.setToolTip(f"{tip} ({shortcut})")
    window.actions[name] = act
    window.addAction(act)
    return dock


def install(window) -> None:
    """Create the docks, menus and actions (once the step view exists)."""
    if getattr(window, "inspector", None) is not None:
        return
    from gui.code_panel import CodePanel
    from gui.equivalence_view import EquivalenceView
    from gui.inspector import Inspector
    from gui.present import Presenter
    from gui.scaling_view import ScalingView
    from gui.tables import InputsEditor
    from gui import lessons

    c = window.controller
    status = window.statusBar()
    window.inspector = Inspector(c, window.step_view)
    window.code_panel = CodePanel(c, window.step_view)
    window.inputs_editor = InputsEditor(c)
    window.equivalences = EquivalenceView(c)
    window.scaling_view = ScalingView(c)
    window.presenter = Presenter(c, window)

    window.docks = {
        "inspector": _dock(window, "show_inspector", "Cell inspector", window.inspector, Area.RightDockWidgetArea,
                           "Ctrl+Shift+I", "Show how a clicked cell's number is made"),
        "code": _dock(window, "show_code", "Code", window.code_panel, Area.RightDockWidgetArea,
                      "Ctrl+Shift+C", "Show the torch lines behind the matrix under focus"),
        "inputs": _dock(window, "edit_inputs", "Edit inputs", window.inputs_editor, Area.BottomDockWidgetArea,
                        "Ctrl+I", "Edit the embeddings and W_query/W_key/W_value; every step updates"),
        "equivalences": _dock(window, "show_equivalences", "Equivalences", window.equivalences,
                              Area.BottomDockWidgetArea, "Ctrl+Shift+D",
                              "Difference heatmaps of the chapter's equal implementations, with max |diff|"),
        "scaling": _dock(window, "show_scaling", "Why 1/√d_k", window.scaling_view, Area.BottomDockWidgetArea,
                         "Ctrl+Shift+K", "Remove the 1/√d_k scaling and see how peaked softmax gets as d_k grows"),
    }
    d = window.docks
    window.splitDockWidget(d["inspector"], d["code"], QtCore.Qt.Orientation.Vertical)
    window.tabifyDockWidget(d["inputs"], d["equivalences"])
    window.tabifyDockWidget(d["equivalences"], d["scaling"])
    for key in ("inputs", "equivalences", "scaling"):
        d[key].hide()
    window.resizeDocks([d["inspector"]], [330], QtCore.Qt.Orientation.Horizontal)
    window.resizeDocks([d["inspector"], d["code"]], [420, 320], QtCore.Qt.Orientation.Vertical)

    _restore_docks(window)
    window.step_view.cell_clicked.connect(lambda *_a: d["inspector"].show())
    window.inputs_editor.message.connect(lambda text: status.showMessage(text, 10000))
    window.code_panel.copied.connect(lambda text: status.showMessage(text, 8000))

    # ---- File: lessons ---------------------------------------------------------------------
    file_menu = _menu(window, "File")
    first = file_menu.actions()[0] if file_menu.actions() else None
    open_act = window._action("open_lesson", "Open lesson…", lambda: _report(window, lessons.open_lesson(window)),
                              ["Ctrl+O"], "Open a lesson file: its settings, edited inputs and step")
    save_act = window._action("save_lesson", "Save lesson…", lambda: _report(window, lessons.save_lesson(window)),
                              ["Ctrl+Shift+S"], "Save the settings, edited inputs and current step as a lesson file")
    file_menu.insertAction(first, open_act)
    file_menu.insertAction(first, save_act)
    file_menu.insertSeparator(first)

    # ---- View: the docks ---------------------------------------------------------------------
    view = _menu(window, "View")
    view.addSeparator()
    for dock in d.values():
        view.addAction(dock.toggleViewAction())
    view.addAction(window._action("reset_inputs", "Reset inputs to the preset", window.inputs_editor.reset,
                                  ["Ctrl+Shift+R"], "Drop every edit of the embeddings and weights"))

    # ---- Present ---------------------------------------------------------------------------------
    p = window.presenter
    present = _menu(window, "Present")
    present.addAction(window._action("font_larger", "Larger text", p.larger, ["Ctrl+=", "Ctrl++"],
                                     "Make every text larger (for a projector)"))
    present.addAction(window._action("font_smaller", "Smaller text", p.smaller, ["Ctrl+-"],
                                     "Make every text smaller"))
    present.addAction(window._action("font_reset", "Normal text size", p.reset_font, ["Ctrl+0"],
                                     "Back to the normal text size"))
    present.addSeparator()
    play = window._action("play", "Play", p.toggle, ["F5"], "Advance one step every few seconds (F5 pauses)")
    present.addAction(play)
    p.playing_changed.connect(lambda on: play.setText("Pause" if on else "Play"))
    button = QtWidgets.QToolButton(objectName="playButton")
    button.setDefaultAction(play)
    button.setAutoRaise(True)
    status.addPermanentWidget(button)        # Play/Pause and the interval, without a toolbar row
    status.addPermanentWidget(p.interval_box)
    for act in window.actions.values():
        if act.toolTip() == act.text().replace("&", ""):
            tip = act.statusTip()
            shortcut = act.shortcut().toString(QtGui.QKeySequence.SequenceFormat.NativeText)
            act.setToolTip(f"{tip} ({shortcut})" if shortcut else tip)
    for menu in (file_menu, view, present):
        menu.setToolTipsVisible(True)


DOCK_STATE_KEY = "window/docks"
DOCK_STATE_VERSION = 1


class _SaveDocksOnClose(QtCore.QObject):
    """Stores which docks are open, and where, when the window closes (before it syncs settings)."""

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QtCore.QEvent.Type.Close:
            obj.settings.setValue(DOCK_STATE_KEY, obj.saveState(DOCK_STATE_VERSION))
        return False


def _restore_docks(window) -> None:
    state = window.settings.value(DOCK_STATE_KEY)
    if isinstance(state, (QtCore.QByteArray, bytes)):
        window.restoreState(state, DOCK_STATE_VERSION)     # a stale or foreign state is ignored
    window._dock_saver = _SaveDocksOnClose(window)
    window.installEventFilter(window._dock_saver)


def _report(window, message: str | None) -> None:
    if message:
        window.statusBar().showMessage(message, 15000)
