"""gui/present.py: text size and Play/Pause."""
from __future__ import annotations

from PySide6 import QtWidgets


def test_present_mode_font_and_play(window, qtbot):
    c = window.controller
    app = QtWidgets.QApplication.instance()
    base = app.font().pointSizeF()
    try:
        window.actions["font_larger"].trigger()
        assert app.font().pointSizeF() > base
        window.actions["font_smaller"].trigger()
        window.actions["font_smaller"].trigger()
        assert app.font().pointSizeF() < base
    finally:
        window.actions["reset_layout"].trigger()
    assert abs(app.font().pointSizeF() - base) < 0.2
    p = window.presenter
    c.first()
    p.set_interval(0.5)
    assert p.interval_box.value() == 0.5 and p.timer.interval() == 500
    window.actions["play"].trigger()
    assert p.playing and window.actions["play"].text() == "Pause"
    qtbot.waitUntil(lambda: c.index >= 2, timeout=5000)
    window.actions["play"].trigger()
    assert not p.playing and window.actions["play"].text() == "Play"
    at = c.index
    qtbot.wait(700)
    assert c.index == at
    c.go(len(c.steps) - 2)
    p.play()
    qtbot.waitUntil(lambda: not p.playing, timeout=5000)        # stops at the last step
    assert c.index == len(c.steps) - 1
