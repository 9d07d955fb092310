"""MainWindow (gui/main_window.py): opening, the action registry, menus and shortcuts, docks, saved settings, closing."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from tests.core.snapshots import snapshot
from tests.gui.fixtures import open_window, panel_data, TRACE_TIMEOUT_MS


def test_cancelled_dialogs_do_nothing(window, qtbot, monkeypatch, tmp_path):
    """Every file dialog of the File menu, cancelled: it was asked, and then nothing happened -
    no file anywhere (the working folder included), no export job, no message, no new trace."""
    asked = []

    def cancelled(result):
        return lambda *a, **k: asked.append(a[1] if len(a) > 1 else "") or result
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", cancelled(("", "")))
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", cancelled(("", "")))
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", cancelled(""))
    monkeypatch.chdir(tmp_path)                       # a relative write would land here
    before = snapshot(tmp_path)
    c = window.controller
    trace, step, mode = c.trace, c.index, c.mode
    window.statusBar().clearMessage()
    names = ("export_matrix", "export_all", "export_all_npy", "export_all_npz", "save_image",
             "open_lesson", "save_lesson")
    for name in names:
        window.actions[name].trigger()
    assert len(asked) == len(names), asked            # each action reached its dialog
    qtbot.wait(50)                                    # anything queued by the actions runs now
    assert snapshot(tmp_path) == before
    assert window.export_job is None and window.busy_label.text() == ""
    assert window.statusBar().currentMessage() == ""
    assert not c.is_busy() and c.trace is trace and (c.index, c.mode) == (step, mode)
    assert QtWidgets.QApplication.activeModalWidget() is None       # no message box either


def test_every_action_is_in_the_registry_with_a_tooltip_and_a_unique_shortcut(window):
    """One registry: every action of every menu (and every action on the window) is in
    ``window.actions`` under its object name, has a tooltip of its own and a status tip, and
    no key sequence triggers two actions. Dock actions follow their dock."""
    registry = set(window.actions.values())
    in_menus = [a for menu_act in window.menuBar().actions() for a in menu_act.menu().actions()
                if not a.isSeparator()]
    assert in_menus and set(in_menus) <= registry
    assert set(QtWidgets.QWidget.actions(window)) == registry      # nothing added to the window from outside
    for name, act in window.actions.items():
        assert act.objectName() == name
        assert act.statusTip() and act.toolTip() and act.toolTip() != act.text(), name
        if not act.shortcut().isEmpty():
            assert act.shortcut().toString() in act.toolTip() or \
                act.shortcut().toString(QtGui.QKeySequence.SequenceFormat.NativeText) in act.toolTip(), name
    keys = [k.toString() for a in registry for k in a.shortcuts()]
    assert len(keys) == len(set(keys)), sorted(keys)
    no_key = sorted(n for n, a in window.actions.items() if a.shortcut().isEmpty())
    assert no_key == ["export_all_npy", "export_all_npz"]          # the menu's two NumPy variants
    for key, dock in window.docks.items():
        act = window.actions[{"explanation": "show_explanation", "inspector": "show_inspector", "code": "show_code", "inputs": "edit_inputs",
                              "equivalences": "show_equivalences", "scaling": "show_scaling"}[key]]
        assert act.isEnabled() and act.isChecked() == dock.isVisible(), key
        act.trigger()
        assert act.isChecked() == dock.isVisible(), key
        act.trigger()
        assert act.isChecked() == dock.isVisible(), key


def test_menus_carry_shortcuts(window):
    acts = window.actions
    assert acts["quit"].shortcut() == QtGui.QKeySequence("Ctrl+Q")
    for name in ("export_matrix", "export_all", "save_image", "next", "back", "first", "last", "book",
                 "open_lesson", "save_lesson", "show_inspector", "show_code", "edit_inputs",
                 "show_equivalences", "show_scaling", "font_larger", "font_smaller", "play"):
        assert not acts[name].shortcut().isEmpty(), name
        assert acts[name].toolTip(), name
    assert acts["font_larger"].shortcut() == QtGui.QKeySequence("Ctrl+=")
    assert acts["font_smaller"].shortcut() == QtGui.QKeySequence("Ctrl+-")
    keys = [k.toString() for a in acts.values() for k in a.shortcuts()]
    assert len(keys) == len(set(keys)), sorted(keys)            # no shortcut does two things
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&File", "&View", "&Present", "&Help"]
    assert acts["cost"].shortcut() == QtGui.QKeySequence("Ctrl+Shift+M")


def test_ctrl_q_closes_cleanly(window, qtbot):
    worker = window.controller._worker
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Q, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert not worker.is_running()


def test_open_docks_are_remembered(qtbot, settings_file):
    c, win = open_window(qtbot, settings_file)
    assert win.docks["inspector"].isVisible() and not win.docks["equivalences"].isVisible()
    win.docks["equivalences"].show()
    win.docks["code"].hide()
    win.close()
    c2, win2 = open_window(qtbot, settings_file)
    assert win2.docks["equivalences"].isVisible() and not win2.docks["code"].isVisible()
    assert win2.docks["inspector"].isVisible()
    win2.close()


def test_settings_persist_across_restarts(qtbot, settings_file):
    c, win = open_window(qtbot, settings_file)
    c.go(5)
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(d_out=4, num_heads=4)
    win.close()
    c2, win2 = open_window(qtbot, settings_file)
    assert c2.mode == "custom" and c2.index == 5
    assert c2.trace.config.d_out == 4 and c2.trace.config.num_heads == 4
    assert win2.params.d_out.value() == 4
    win2.close()


def test_window_opens_on_the_book_example(window):
    c = window.controller
    assert window.windowTitle() == "Attention Stepper"
    assert c.mode == "book" and c.index == 0
    assert window.stack.currentWidget() is window.step_view
    x = panel_data(window, "inputs").maps[0].values
    np.testing.assert_allclose(x[1], [0.55, 0.87, 0.66], atol=1e-6)   # journey
    assert panel_data(window, "inputs").row_labels[:2] == ("Your", "journey")
    assert "6 tokens" in window.status_info.text() and "CPU" in window.status_info.text()
    assert window.step_bar.counter.text() == f"1 / {len(c.steps)}"
    assert window.params.book.isChecked()
    devices = [window.params.device.itemData(i) for i in range(window.params.device.count())]
    assert devices == (["cpu", "cuda"] if c.cuda_available else ["cpu"])


def test_the_status_line_fits_its_text_and_a_shorter_one_relays_nothing_out(window, qtbot):
    """The trace time changes with every change: the label only grows (fixed size), so a new
    text repaints the label alone, never clipped, and the status bar is not laid out again."""
    label = window.status_info
    longer = label.text() + " · a much longer status text than before"
    window._set_status_info(longer)
    assert label.text() == longer
    assert label.minimumSize() == label.maximumSize()
    assert label.maximumWidth() >= label.fontMetrics().horizontalAdvance(longer)
    qtbot.waitUntil(lambda: label.width() >= label.fontMetrics().horizontalAdvance(longer))
    wide = label.width()
    layouts = []

    class Watch(QtCore.QObject):
        def eventFilter(self, obj, event):
            if event.type() == QtCore.QEvent.Type.LayoutRequest:
                layouts.append(obj)
            return False
    watch = Watch()
    window.statusBar().installEventFilter(watch)
    try:
        QtWidgets.QApplication.processEvents()        # the growth's own layout
        layouts.clear()
        window._set_status_info("CPU · 6 tokens")
        QtWidgets.QApplication.processEvents()
    finally:
        window.statusBar().removeEventFilter(watch)
    assert label.width() == wide and layouts == []


def test_cost_view_opens_from_the_view_menu_is_kept_and_stops_with_the_window(window, qtbot):
    """View → Cost of attention (Ctrl+Shift+M): its own window on the selected device, the same one
    re-raised, and closing the main window cancels a run and leaves no thread running."""
    act = window.actions["cost"]
    assert act in [a for m in window.menuBar().actions() if m.text() == "&View" for a in m.menu().actions()]
    act.trigger()
    view = window.cost_view
    assert view is not None and view.isVisible() and view.isWindow()
    assert view.runner.settings.device == window.cost_device() == window.model.config.device   # book: "auto"
    act.trigger()
    assert window.cost_view is view                              # kept: its measurements stay
    with qtbot.waitSignal(view.progressed, timeout=60000):
        view.run_button.click()
    assert view.is_running()
    worker = view.worker
    window.close()
    assert not worker.busy() and not view.isVisible()
    assert not window.controller._worker.is_running()


def test_computing_shows_only_for_a_computation_that_lasts(window, qtbot, monkeypatch):
    """A quick change never flashes "computing…"; one still running after the delay says so,
    and the label clears when it ends."""
    import gui.main_window as mw
    c = window.controller
    qtbot.waitUntil(lambda: c.has_trace and not c.is_busy(), timeout=60000)
    c.busy.emit(True)
    assert window.busy_label.text() == ""
    c.busy.emit(False)
    qtbot.wait(mw.BUSY_LABEL_DELAY_MS + 100)
    assert window.busy_label.text() == ""                # ended before the delay: never shown
    monkeypatch.setattr(c, "is_busy", lambda: True)
    c.busy.emit(True)
    qtbot.waitUntil(lambda: window.busy_label.text() == "computing…", timeout=2000)
    c.busy.emit(False)
    assert window.busy_label.text() == ""


def test_the_window_keys_work_from_the_cost_window_too(window, qtbot):
    """F1 (keyboard shortcuts) pressed in the Cost window opens the main window's sheet: the
    app-wide actions (Quit, shortcuts, About, Train, Cost) answer from every window of the app."""
    from gui.main_window import APP_WIDE
    assert {"quit", "shortcuts", "cost", "train"} <= APP_WIDE
    for name in APP_WIDE:
        assert window.actions[name].shortcutContext() == QtCore.Qt.ShortcutContext.ApplicationShortcut, name
    assert window.actions["next"].shortcutContext() == QtCore.Qt.ShortcutContext.WindowShortcut
    window.show_cost()
    cost = window.cost_view
    qtbot.waitExposed(cost)
    cost.activateWindow()
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is cost)
    window.shortcuts_sheet = None
    qtbot.keyClick(cost, QtCore.Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: getattr(window, "shortcuts_sheet", None) is not None)
    window.shortcuts_sheet.close()
    cost.close()


def test_f11_gives_the_maps_the_whole_width_and_brings_the_panes_back(window, qtbot):
    """Maps full width (F11): the navigator and the side area's tabs hide and the maps' pane takes
    their width; pressed again, exactly the panes that were open come back."""
    side = {k: d.isVisible() for k, d in window.docks.items()}
    before = window.stack.width()
    window.actions["maps_only"].trigger()
    qtbot.waitUntil(lambda: window.stack.width() > before + 300)
    assert not window.navigator.isVisible() and window.actions["maps_only"].isChecked()
    assert not any(window.docks[k].isVisible() for k in ("explanation", "inspector", "code"))
    assert window.stack.width() >= 0.9 * window.width()
    window.actions["maps_only"].trigger()
    qtbot.waitUntil(lambda: window.navigator.isVisible())
    assert {k: d.isVisible() for k, d in window.docks.items()} == side
    assert not window.actions["maps_only"].isChecked()
