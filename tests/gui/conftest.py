"""pytest-qt fixtures for the GUI tests: offscreen Qt, isolated QSettings, a ready window."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6 import QtCore  # noqa: E402

from tests.gui.fixtures import open_window  # noqa: E402


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
