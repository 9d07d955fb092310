"""pytest-qt fixtures for the GUI tests: offscreen Qt, isolated QSettings, a ready window, and the
bad-input catalogue's shared window on a known good custom trace (``good``)."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6 import QtCore, QtWidgets  # noqa: E402

from tests.gui.fixtures import GOOD, TRACE_TIMEOUT_MS, open_window, step_index, wait_until  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, qapp):
    """Every test writes QSettings under its own temporary folder, never the user's."""
    QtCore.QSettings.setDefaultFormat(QtCore.QSettings.Format.IniFormat)
    QtCore.QSettings.setPath(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope,
                             str(tmp_path / "settings"))
    qapp.setOrganizationName("AttentionStepperTests")
    qapp.setApplicationName("Attention Stepper Tests")
    yield tmp_path / "settings"


@pytest.fixture
def settings_file(tmp_path):
    return str(tmp_path / "settings" / "stepper.ini")


@pytest.fixture
def window(qtbot, settings_file):
    controller, win = open_window(qtbot, settings_file)
    yield win
    win.close()


@pytest.fixture(scope="module")
def shared_window(qapp, tmp_path_factory):
    """One window for the whole catalogue (opening one per row would triple the run time)."""
    from gui.app import make_window, start
    settings = QtCore.QSettings(str(tmp_path_factory.mktemp("settings") / "stepper.ini"),
                                QtCore.QSettings.Format.IniFormat)
    controller, win = make_window(settings)
    win.resize(1400, 860)
    win.show()
    start(win, controller)
    wait_until(lambda: controller.has_trace and not controller.is_busy())
    yield win
    win.close()


@pytest.fixture
def good(shared_window, qtbot):
    """The window on a multi-head step of a valid custom trace (the 'last good trace')."""
    win = shared_window
    c = win.controller
    for w in QtWidgets.QApplication.topLevelWidgets():        # dialogs a previous row left open
        if w is not win and w.isVisible() and isinstance(w, QtWidgets.QDialog):
            w.close()
    win.setFocus()
    win.params._typed.clear()
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.restore("custom", {**c.shown_config(), **GOOD, "device": "cpu", "dtype": "float32",
                             "batch": 1, "dropout": 0.0, "dropout_seed": 123, "init": "linear",
                             "causal": True, "qkv_bias": False})
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    c.go(step_index(c, "multihead.weights"))
    win.params.clear_errors()
    win.statusBar().clearMessage()
    assert c.trace.config.to_dict() == {**c.trace.config.to_dict(), **GOOD}
    return win
