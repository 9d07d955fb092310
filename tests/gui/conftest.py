"""pytest-qt fixtures for the GUI tests: offscreen Qt, isolated QSettings, a ready window."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6 import QtCore  # noqa: E402

TRACE_TIMEOUT_MS = 60_000


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


def open_window(qtbot, settings_file):
    from gui.app import make_window, start
    controller, win = make_window(QtCore.QSettings(settings_file, QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.resize(1400, 860)
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(controller.trace_changed, timeout=TRACE_TIMEOUT_MS):
        start(win, controller)
    # the book's first section arrives first; wait for the other sections too
    qtbot.waitUntil(lambda: not controller.is_busy(), timeout=TRACE_TIMEOUT_MS)
    win.activateWindow()
    return controller, win


@pytest.fixture
def window(qtbot, settings_file):
    controller, win = open_window(qtbot, settings_file)
    yield win
    win.close()
