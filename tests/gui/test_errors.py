"""gui/errors.py: an unexpected exception becomes a dialog, a log line and a status message; the app keeps running."""
from __future__ import annotations

import sys
import threading

import numpy as np
from PySide6 import QtCore, QtWidgets
import pytest

from tests.gui.fixtures import shown_maps


def _exc_info(fn):
    try:
        fn()
    except RuntimeError:
        return sys.exc_info()


def test_an_exception_in_a_slot_becomes_a_status_message(window, qtbot, monkeypatch, tmp_path):
    from gui import errors
    monkeypatch.setattr(errors, "log_path", lambda: tmp_path / "errors.log")
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)     # restored after the test
    errors.install_excepthook(window)

    def boom():
        raise RuntimeError("kaboom")

    sys.excepthook(*_exc_info(boom))
    assert "kaboom" in window.statusBar().currentMessage()
    assert "kaboom" in (tmp_path / "errors.log").read_text()
    assert window.isVisible()


@pytest.fixture
def hook(window, monkeypatch, tmp_path):
    """The app's exception hook on the test window, logging under tmp_path (never the user's folder)."""
    from gui import errors
    monkeypatch.setattr(errors, "log_path", lambda: tmp_path / "appdata" / "errors.log")
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)              # restored after the test
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    return errors.install_excepthook(window)


def _raising_button(window):
    button = QtWidgets.QPushButton("boom", window)

    def slot():
        raise RuntimeError("kaboom in a slot")

    button.clicked.connect(slot)
    button.show()
    return button


def test_an_exception_in_a_slot_shows_a_dialog_logs_it_and_the_app_keeps_running(window, hook, qtbot, tmp_path):
    c = window.controller
    before = [[img.copy() for img in p] for p in shown_maps(window.step_view)]
    qtbot.mouseClick(_raising_button(window), QtCore.Qt.MouseButton.LeftButton)   # a real slot raises
    qtbot.waitUntil(lambda: hook.dialog is not None and hook.dialog.isVisible(), timeout=5000)
    dialog = hook.dialog
    assert not dialog.isModal()
    assert "kaboom in a slot" in dialog.message.text()
    details = dialog.details.toPlainText()
    assert "Traceback" in details and "RuntimeError: kaboom in a slot" in details and "in slot" in details
    assert "Python" in details and "Qt" in details
    # the status bar says it too, with where the log is
    log = tmp_path / "appdata" / "errors.log"
    assert "kaboom in a slot" in window.statusBar().currentMessage()
    assert str(log) in window.statusBar().currentMessage() and str(log) in dialog.where.text()
    assert "RuntimeError: kaboom in a slot" in log.read_text()
    # Copy report puts the whole report on the clipboard
    QtWidgets.QApplication.clipboard().clear()
    qtbot.mouseClick(dialog.copy_button, QtCore.Qt.MouseButton.LeftButton)
    assert QtWidgets.QApplication.clipboard().text() == details
    # the app still responds: the shown numbers are unchanged, steps and recomputes work
    after = [[img for img in p] for p in shown_maps(window.step_view)]
    for a, b in zip(before, after):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Right)
    assert c.index == 1 and window.step_bar.counter.text() == f"2 / {len(c.steps)}"
    with qtbot.waitSignal(c.trace_changed, timeout=60_000):
        c.set_params(d_out=4)
    assert c.trace.config.d_out == 4
    assert window.isVisible()
    qtbot.mouseClick(dialog.close_button, QtCore.Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()


def test_repeated_errors_share_one_dialog(window, hook, qtbot):
    button = _raising_button(window)
    for _ in range(5):
        qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: hook.dialog is not None and hook.dialog.count == 5, timeout=5000)
    dialogs = [w for w in QtWidgets.QApplication.topLevelWidgets()
               if w.objectName() == "errorDialog" and w.isVisible()]
    assert dialogs == [hook.dialog]
    assert "5 errors" in hook.dialog.message.text()
    assert hook.dialog.details.toPlainText().count("RuntimeError: kaboom in a slot") == 5
    hook.dialog.close()                     # the next error starts a fresh report
    qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: hook.dialog.isVisible(), timeout=5000)
    assert hook.dialog.count == 1


def test_an_exception_on_another_thread_is_shown_on_the_gui_thread(window, hook, qtbot, tmp_path):
    shown_on = []
    orig = hook._show

    def spy(*args):
        shown_on.append(QtCore.QThread.currentThread() is QtWidgets.QApplication.instance().thread())
        orig(*args)

    hook.reported.disconnect(orig)
    hook.reported.connect(spy, QtCore.Qt.ConnectionType.QueuedConnection)

    def work():
        raise ValueError("bad on a thread")

    t = threading.Thread(target=work, name="helper")
    t.start()
    t.join()
    qtbot.waitUntil(lambda: hook.dialog is not None and hook.dialog.isVisible(), timeout=5000)
    assert shown_on == [True]
    assert "ValueError: bad on a thread" in hook.dialog.details.toPlainText()
    assert "thread: helper" in (tmp_path / "appdata" / "errors.log").read_text()


def test_an_unwritable_log_still_shows_the_dialog(window, hook, qtbot, tmp_path, monkeypatch):
    from gui import errors
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setattr(errors, "log_path", lambda: blocker / "errors.log")
    qtbot.mouseClick(_raising_button(window), QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: hook.dialog is not None and hook.dialog.isVisible(), timeout=5000)
    assert "could not be written" in hook.dialog.where.text()
    assert "kaboom in a slot" in window.statusBar().currentMessage()


def test_the_log_is_rotated_when_large(tmp_path, monkeypatch):
    from gui import errors
    log = tmp_path / "errors.log"
    monkeypatch.setattr(errors, "log_path", lambda: log)
    log.write_text("x" * (errors.MAX_LOG_BYTES + 1))
    assert errors.write_log("report\n") == log
    assert log.read_text() == "--- report\n\n"
    assert (tmp_path / "errors.log.1").stat().st_size == errors.MAX_LOG_BYTES + 1


def test_an_error_while_reporting_falls_back_to_the_previous_hook(window, monkeypatch, qtbot):
    from gui import errors
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: seen.append(a[1]))
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    reporter = errors.install_excepthook(window)

    def broken(*_a):
        raise OSError("report failed")

    monkeypatch.setattr(errors, "report_text", broken)
    try:
        raise RuntimeError("original")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    assert [str(e) for e in seen] == ["original"]
    assert reporter.dialog is None and window.isVisible()
