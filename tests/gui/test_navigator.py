"""gui/navigator.py: stage headers and arrow keys in the step tree."""
from __future__ import annotations

from PySide6 import QtCore

from gui.steps import step_numbers


Key = QtCore.Qt.Key


def _current_text(win) -> str:
    return win.navigator.currentItem().text(0)


def test_choosing_a_stage_header_shows_its_first_step_in_the_navigator(window, qtbot):
    """Clicking a stage's header while on its first step left the header highlighted."""
    c, nav = window.controller, window.navigator
    first_trainable = c.steps.index(next(s for s in c.steps if s.stage == "trainable"))
    header = nav.topLevelItem(1)
    nav.setCurrentItem(header)                        # from step 1.1: goes to 2.1
    assert c.index == first_trainable
    assert _current_text(window).startswith(step_numbers()[first_trainable] + " ")
    nav.setCurrentItem(header)                        # again, already there
    nav.setCurrentItem(nav.items[first_trainable])
    nav.setCurrentItem(header)
    assert c.index == first_trainable
    assert _current_text(window).startswith(step_numbers()[first_trainable] + " ")


def test_up_and_down_in_the_navigator_cross_the_stage_headers(window, qtbot):
    c, nav = window.controller, window.navigator
    first_trainable = c.steps.index(next(s for s in c.steps if s.stage == "trainable"))
    c.go(first_trainable)
    nav.setFocus()
    qtbot.keyClick(nav, Key.Key_Up)                   # onto the header: the step before it
    assert c.index == first_trainable - 1
    assert _current_text(window).startswith(step_numbers()[first_trainable - 1] + " ")
    qtbot.keyClick(nav, Key.Key_Down)                 # onto the header again: its first step
    assert c.index == first_trainable
    assert _current_text(window).startswith(step_numbers()[first_trainable] + " ")
    c.go(0)
    qtbot.keyClick(nav, Key.Key_Up)                   # the first stage's header: stays on 1.1
    assert c.index == 0 and _current_text(window).startswith(step_numbers()[0] + " ")
    for i in range(1, len(c.steps)):                  # Down walks every step in order
        qtbot.keyClick(nav, Key.Key_Down)
        assert c.index == i and _current_text(window).startswith(step_numbers()[i] + " ")
