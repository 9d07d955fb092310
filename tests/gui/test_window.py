"""Window-level behaviour (issue 12): no stale hover or inspector, stepping keys wherever the focus
is, a visible focus, docks that raise and give way, a first window that fits the screen, Ctrl+0,
present mode in the same window size, the shortcuts sheet and the tour."""
from __future__ import annotations

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from gui.steps import step_numbers
from tests.gui.fixtures import (GOOD, TRACE_TIMEOUT_MS, click_cell, go_to, set_text, shown,
                                type_into_spin, wait_trace)

Key = QtCore.Qt.Key


def _go_number(window, qtbot, number: str) -> None:
    c = window.controller
    go_to(window, qtbot, c.steps[step_numbers().index(number)].id)


def _custom(window, qtbot, **extra) -> None:
    c = window.controller
    wait_trace(window, qtbot, lambda: c.restore("custom", {**c.shown_config(), **GOOD, "device": "cpu",
                                                           "batch": 1, "dropout": 0.0, **extra}))


# ---- no stale state ---------------------------------------------------------------------------
def test_hover_line_is_cleared_when_the_text_changes(window, qtbot):
    _go_number(window, qtbot, "2.6")
    panel, _data = shown(window, "trainable", "attn_weights")
    stale = "A[journey, starts] = 0.2199"
    panel.hovered.emit(stale)                      # what the heatmap emits for a hovered cell
    assert window.step_view.hover.text() == stale
    assert window.statusBar().currentMessage() == stale
    wait_trace(window, qtbot, lambda: set_text(qtbot, window, "The old dog chased the quick fox"))
    assert "journey" not in window.step_view.hover.text()
    assert "journey" not in window.statusBar().currentMessage()
    assert window.controller.model.hover == ""


def test_inspector_names_its_step_and_preset_and_clears_on_another_section(window, qtbot):
    c = window.controller
    _go_number(window, qtbot, "2.6")
    panel, data = shown(window, "trainable", "attn_weights")
    click_cell(qtbot, panel, 1, 0)
    insp = window.inspector
    qtbot.waitUntil(lambda: insp.cell is not None)
    text = insp.text.toPlainText()
    section = c.steps[step_numbers().index("2.6")].section
    assert f"Step 2.6 {c.steps[step_numbers().index('2.6')].title}" in text
    assert f"Book preset, § {c.model.section_title(section)} · 6 tokens, d_in 3, d_out 2" in text
    assert c.model.section_title(section).startswith("3.4 ")
    assert insp.explanation.value == pytest.approx(float(data.maps[0].values[1, 0]), abs=1e-6)
    for other in ("2.8", "1.1"):
        assert c.steps[step_numbers().index(other)].section != section
        _go_number(window, qtbot, other)
        # the cell is not recomputed under that step's Book section: the panel says where it was clicked
        assert insp.cell is None and insp.explanation is None and c.model.marks == ()
        text = insp.text.toPlainText()
        assert "was clicked on Step 2.6" in text and "another Book section" in text
        assert "value =" not in text


def test_inspector_follows_an_edit_and_says_when_the_preset_changed(window, qtbot):
    c = window.controller
    _custom(window, qtbot)
    go_to(window, qtbot, "trainable.weights_softmax")
    panel, _data = shown(window, "trainable", "attn_weights")
    click_cell(qtbot, panel, 2, 1)
    insp = window.inspector
    qtbot.waitUntil(lambda: insp.cell is not None)
    assert "own settings · 6 tokens, d_in 4, d_out 4" in insp.text.toPlainText()
    before = insp.explanation.value
    wait_trace(window, qtbot, lambda: c.set_params(seed=6))          # re-targeted: same cell, new numbers
    _panel, data = shown(window, "trainable", "attn_weights")
    assert insp.cell is not None
    assert insp.explanation.value == pytest.approx(float(data.maps[0].values[2, 1]), abs=1e-6)
    assert insp.explanation.value != pytest.approx(before, abs=1e-6)
    wait_trace(window, qtbot, c.use_book)                  # another preset: said, not silent
    text = insp.text.toPlainText()
    assert "The preset changed" in text and "under the Book preset" in text and "was Step 2.6" in text
    _panel, data = shown(window, "trainable", "attn_weights")
    assert "Book preset, § 3.4" in text
    assert insp.explanation.value == pytest.approx(float(data.maps[0].values[2, 1]), abs=1e-6)


# ---- keys and focus -------------------------------------------------------------------------------
def test_stepping_keys_work_after_the_heads_box_and_not_while_typing(window, qtbot):
    c = window.controller
    app = QtWidgets.QApplication.instance()
    _go_number(window, qtbot, "4.6")
    box = window.step_view.head_box
    box.setFocus()
    qtbot.waitUntil(box.hasFocus)
    box.setCurrentIndex(1)                        # "head 0"
    qtbot.keyClick(box, Key.Key_Home)
    assert c.index == 0
    for key, expected in ((Key.Key_Right, 1), (Key.Key_Right, 2), (Key.Key_Left, 1),
                          (Key.Key_End, len(c.steps) - 1), (Key.Key_PageUp, len(c.steps) - 2)):
        qtbot.keyClick(app.focusWidget(), key)
        assert c.index == expected, key
    field = window.params.text                    # typing: the cursor moves, the step stays
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    field.setCursorPosition(0)
    qtbot.keyClick(field, Key.Key_Right)
    qtbot.keyClick(field, Key.Key_End)
    assert c.index == len(c.steps) - 2 and field.cursorPosition() == len(field.text())


def test_the_focused_widget_is_framed(window, qtbot):
    _go_number(window, qtbot, "4.6")
    box = window.step_view.head_box
    box.setFocus()
    qtbot.waitUntil(box.hasFocus)
    frame = window.focus_frame
    qtbot.waitUntil(frame.isVisible)
    target = QtCore.QRect(box.mapTo(window, QtCore.QPoint(0, 0)), box.size())
    assert frame.geometry().contains(target) and frame.geometry().adjusted(3, 3, -3, -3).intersects(target)
    image = window.grab().toImage()
    edge = frame.geometry().topLeft() + QtCore.QPoint(frame.width() // 2, 0)
    assert QtGui.QColor(image.pixel(edge)) == QtGui.QColor("#1f6fd6")     # drawn, on top
    window.navigator.setFocus()
    qtbot.waitUntil(lambda: frame.target is window.navigator)
    assert frame.geometry().contains(QtCore.QRect(window.navigator.mapTo(window, QtCore.QPoint(0, 0)),
                                                  window.navigator.size()))


# ---- docks ----------------------------------------------------------------------------------------
def test_asking_for_a_dock_behind_another_tab_raises_it(window, qtbot):
    acts, docks = window.actions, window.docks
    acts["show_scaling"].trigger()
    acts["show_equivalences"].trigger()
    qtbot.waitUntil(lambda: not docks["equivalences"].visibleRegion().isEmpty())
    assert docks["scaling"].visibleRegion().isEmpty()       # open, behind the Equivalences tab
    acts["show_scaling"].trigger()                           # Ctrl+Shift+K
    qtbot.waitUntil(lambda: not docks["scaling"].visibleRegion().isEmpty())
    assert docks["scaling"].isVisible() and acts["show_scaling"].isChecked()
    assert docks["equivalences"].visibleRegion().isEmpty()
    acts["show_scaling"].trigger()                           # in front: the same key closes it
    assert not docks["scaling"].isVisible() and not acts["show_scaling"].isChecked()


def test_docks_keep_the_window_size_the_maps_height_and_the_buttons_in_place(window, qtbot):
    from gui.main_window import MIN_MAPS_HEIGHT
    c = window.controller
    size = window.size()
    for name in ("show_equivalences", "show_scaling"):
        window.actions[name].trigger()
        qtbot.wait(20)
    bar = window.step_bar
    places, widths = set(), set()
    for i in range(len(c.steps)):
        c.go(i)
        qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
        QtWidgets.QApplication.processEvents()
        places.add((bar.back.mapTo(window, QtCore.QPoint(0, 0)).toTuple(),
                    bar.next.mapTo(window, QtCore.QPoint(0, 0)).toTuple()))
        widths.add(window.docks["inspector"].width())
        assert window.size() == size, c.step.id
        assert window.step_view.height() >= MIN_MAPS_HEIGHT, c.step.id
    assert len(places) == 1, places                 # Back/Next never move under the mouse
    assert len(widths) == 1, widths


def test_an_invalid_field_does_not_move_the_maps(window, qtbot):
    _custom(window, qtbot)
    top = window.step_view.mapTo(window, QtCore.QPoint(0, 0)).y()
    type_into_spin(qtbot, window.params.num_heads, "3")       # d_out 4 is not divisible by 3
    qtbot.waitUntil(lambda: any(e.isVisible() for e in window.params.errors.values()))
    error = next(e for e in window.params.errors.values() if e.isVisible())
    assert error.height() <= error.fontMetrics().lineSpacing() + 8       # one line
    QtWidgets.QApplication.processEvents()
    assert abs(window.step_view.mapTo(window, QtCore.QPoint(0, 0)).y() - top) <= error.height()


# ---- the first window, Ctrl+0, present mode ------------------------------------------------------
@pytest.mark.parametrize("screen", [(1366, 768 - 40), (1920, 1080 - 40)])
def test_the_first_window_fits_the_screens_available_area(qtbot, settings_file, screen):
    from gui.app import make_window, start
    avail = QtCore.QRect(0, 0, *screen)
    controller, win = make_window(QtCore.QSettings(settings_file, QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.fit_to(avail)
    win.show()
    with qtbot.waitSignal(controller.trace_changed, timeout=TRACE_TIMEOUT_MS):
        start(win, controller)
    qtbot.waitUntil(lambda: not controller.is_busy(), timeout=TRACE_TIMEOUT_MS)
    QtWidgets.QApplication.processEvents()
    assert avail.contains(win.geometry()), (win.geometry(), avail)
    for w in (win.step_bar, win.step_bar.next, win.statusBar(), win.step_view):
        r = QtCore.QRect(w.mapTo(win, QtCore.QPoint(0, 0)), w.size())
        assert w.isVisible() and win.rect().contains(r), (w.objectName(), r, win.rect())
    assert win.step_view.height() >= 300
    win.close()


def test_ctrl_0_restores_the_starting_layout(window, qtbot, monkeypatch, normal_text):
    import gui.main_window as mw
    monkeypatch.setattr(mw, "_available", lambda *_a: QtCore.QRect(0, 0, 1366, 728))
    app = QtWidgets.QApplication.instance()
    base = window.presenter.base_points
    docks = {k: d.isVisible() for k, d in window.docks.items()}
    for _ in range(3):
        window.actions["font_larger"].trigger()
    window.actions["show_equivalences"].trigger()
    window.docks["inspector"].close()
    window.splitter.setSizes([400, 400, 400])
    window.resize(1500, 900)
    qtbot.keyClick(window.navigator, Key.Key_0, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.size() == QtCore.QSize(1350, 688))
    assert abs(app.font().pointSizeF() - base) < 0.2
    assert {k: d.isVisible() for k, d in window.docks.items()} == docks
    assert window.actions["show_inspector"].isChecked() and not window.actions["show_equivalences"].isChecked()


@pytest.fixture
def normal_text(window):
    yield
    window.presenter.reset_font()           # the application font is shared with the next tests


def test_present_mode_keeps_the_window_size(window, qtbot, normal_text):
    app = QtWidgets.QApplication.instance()
    size, base = window.size(), app.font().pointSizeF()
    for _ in range(3):
        qtbot.keyClick(window.navigator, Key.Key_Equal, QtCore.Qt.KeyboardModifier.ControlModifier)
        qtbot.wait(10)
    qtbot.wait(50)
    assert app.font().pointSizeF() > base * 1.4
    assert window.size() == size

    def title_points(panel) -> list[float]:
        return [float(panel._title.opts["size"][:-2])] + [
            float(m.plot.titleLabel.opts["size"][:-2]) for m in panel.maps if m.plot.titleLabel.text]

    panel = window.step_view.panels[0]
    assert min(title_points(panel)) > 9 * 1.4               # the titles drawn before grew too
    window.controller.next()                                 # and the ones drawn after
    QtWidgets.QApplication.processEvents()
    assert min(title_points(window.step_view.panels[0])) > 9 * 1.4
    assert window.step_bar.counter.width() >= window.step_bar.counter.fontMetrics().horizontalAdvance(
        f"{len(window.controller.steps)} / {len(window.controller.steps)}")


# ---- help -------------------------------------------------------------------------------------------
def test_shortcuts_sheet_lists_every_action_with_its_keys(window, qtbot):
    from gui.help import shortcut_rows
    window.actions["shortcuts"].trigger()
    sheet = window.findChild(QtWidgets.QDialog, "shortcutsSheet")
    assert sheet is not None and sheet.isVisible()
    text = sheet.findChild(QtWidgets.QTextBrowser).toPlainText()
    in_menus = {id(a) for acts in window.menu_actions.values() for a in acts}
    native = QtGui.QKeySequence.SequenceFormat.NativeText
    for name, act in window.actions.items():
        assert id(act) in in_menus, name                     # every registry action is on a menu
        for k in act.shortcuts():
            assert k.toString(native) in text, (name, k.toString())
        assert act.text().replace("&", "").rstrip("…") in text, name
    rows = shortcut_rows(window.menu_actions)
    assert len(rows) == len(window.actions)
    sheet.close()


def test_the_tour_points_at_each_part_and_is_remembered(window, qtbot):
    from gui.help import Tour
    from gui.main_window import TOUR_KEY
    assert window.findChild(Tour) is None                     # never shown unless asked
    from gui.help import target_rect
    tour = window.start_tour()
    names = [name for name, _w, _t in tour.stops]
    assert names == ["navigator", "map", "hover", "inspector", "code", "book", "stage5", "train", "cost"]
    step, sizes, buttons = window.controller.index, set(), set()
    for at, (name, widget, _text) in enumerate(tour.stops):
        assert tour.at == at and tour.isVisible()
        target = target_rect(window, widget)
        assert target is not None and not target.isEmpty(), name
        assert tour.pointer.isVisible() and tour.pointer.geometry().contains(target), name
        assert window.rect().contains(tour.geometry()), name
        assert not tour.geometry().intersects(target) or name == "map", name   # beside, not over it
        sizes.add((tour.width(), tour.height()))
        buttons.add(tour.next.geometry().topLeft().toTuple())                  # within the bubble
        assert tour.text.geometry().bottom() < tour.next.geometry().top(), name  # the text is never cut
        tour.next.click()
    assert len(sizes) == 1 and len(buttons) == 1, (sizes, buttons)       # Next stays in one place
    assert window.controller.index == step                               # the stops open nothing…
    assert window.train_view is None and window.cost_view is None        # …not Train, not Cost
    assert not tour.isVisible() and not tour.pointer.isVisible()
    assert window.settings.value(TOUR_KEY) in (True, "true")
    assert window.maybe_start_tour() is None                  # shown once
    tour = window.actions["tour"].trigger() or window.tour     # re-opened from Help
    assert tour.isVisible()
    tour.skip.click()
    assert not tour.isVisible()


@pytest.mark.parametrize("env, shown", [("1", True), ("0", False)])
def test_the_tour_opens_by_itself_only_on_the_first_start(window, qtbot, monkeypatch, env, shown):
    from gui.app import tour_after_first_trace
    from gui.help import Tour
    from gui.main_window import TOUR_KEY
    c = window.controller
    monkeypatch.setenv("ATTENTION_STEPPER_TOUR", env)
    tour_after_first_trace(window, c)                       # what run_app does on start
    wait_trace(window, qtbot, lambda: c.set_params(seed=7))
    qtbot.wait(50)
    tour = window.findChild(Tour)
    assert (tour is not None and tour.isVisible()) == shown
    assert (window.settings.value(TOUR_KEY) in (True, "true")) == shown
    if shown:
        tour.close()
        tour_after_first_trace(window, c)                   # the next start: remembered, not again
        wait_trace(window, qtbot, lambda: c.set_params(seed=8))
        qtbot.wait(50)
        assert not window.findChild(Tour).isVisible()
