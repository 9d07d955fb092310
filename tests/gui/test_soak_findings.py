"""Regressions for the bugs the soak test (tests/gui/test_soak.py) found."""
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


def test_garbage_is_collected_on_the_gui_thread_only(qtbot):
    """The soak froze for good: a GC on the worker thread collected a cycle holding a Qt
    connection (Qt's connection mutex, then the GIL) while the GUI thread held the GIL and
    waited for that mutex in QTextEdit.setHtml. Automatic GC is now off while a controller
    lives, and a timer collects on the GUI thread."""
    import gc
    import threading
    import weakref

    from gui.controller import Controller
    from tests.gui.conftest import TRACE_TIMEOUT_MS

    assert gc.isenabled()
    threads = []

    def record(phase, _info):
        if phase == "start":
            threads.append(threading.current_thread() is threading.main_thread())

    c = Controller()
    gc.callbacks.append(record)
    try:
        assert not gc.isenabled()
        # cycles that hold Qt connections, made on the GUI thread, as views do
        refs = []
        for _ in range(300):
            obj = QtCore.QObject()
            obj.cycle = obj
            obj.objectNameChanged.connect(obj.deleteLater)
            refs.append(weakref.ref(obj))
            del obj
        # the worker allocates a lot (several traces) while that garbage waits
        for d_out in (8, 16, 32, 64):
            c.set_params(embeddings="random", text="a b c d e f g h " * 8, d_in=16, d_out=d_out,
                         num_heads=4, batch=4)
            qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
        qtbot.waitUntil(lambda: all(r() is None for r in refs), timeout=10_000)
        assert threads and all(threads), "a collection ran on another thread"
        assert c._gc.collections > 0
    finally:
        gc.callbacks.remove(record)
        c.shutdown()
    assert gc.isenabled()


def test_a_seed_beyond_the_box_is_said_next_to_it(window, qtbot):
    """A lesson or saved settings may carry a seed up to 2**63-1; the box stops at 2**31-1 and
    showed 2147483647 as if that were the seed."""
    from tests.gui.conftest import TRACE_TIMEOUT_MS
    c, p = window.controller, window.params
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(seed=2**40)
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert c.trace.config.seed == 2**40
    assert p.seed.value() == p.seed.maximum()
    label = p.errors["seed"]
    assert label.isVisibleTo(window) and str(2**40) in label.text()
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(seed=7)
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert p.seed.value() == 7 and not label.isVisibleTo(window)


def test_panel_arrangements_that_take_turns_on_resize_settle(window, qtbot, monkeypatch):
    """Seed 7 of the soak hung for ever: at some sizes a new arrangement of the panels resized
    the step view, which chose the old arrangement again, and so on (100% CPU in processEvents).
    A resize may change the arrangement only a few times a second."""
    from PySide6 import QtGui
    view = window.step_view
    assert view.datas, "the window shows a step"
    choices = iter([1, 2] * 50)                       # a view that always wants the other layout
    monkeypatch.setattr(view, "_choose_per_row", lambda datas: next(choices))
    calls = []
    real = view._ensure_panels
    monkeypatch.setattr(view, "_ensure_panels", lambda datas: (calls.append(1), real(datas)))
    size = view.size()
    for _ in range(40):
        view.resizeEvent(QtGui.QResizeEvent(size, size))
    assert 1 <= len(calls) <= 4
