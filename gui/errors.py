"""Unexpected errors: logged to a file and shown in the status bar; the app keeps running.

PySide6 reports an exception raised in a slot through ``sys.excepthook``; this hook writes
the traceback to ``<app data>/errors.log`` and shows one line to the learner instead.
"""
from __future__ import annotations

import datetime
import sys
import traceback
from pathlib import Path

from PySide6 import QtCore


def log_path() -> Path:
    base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".attention-stepper") / "errors.log"


def install_excepthook(window) -> None:
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        path = log_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')}\n{text}\n")
            where = f" (details in {path})"
        except OSError:
            where = ""
        sys.stderr.write(text)
        try:
            window.statusBar().showMessage(f"Unexpected error: {exc_type.__name__}: {exc}{where}", 20000)
        except RuntimeError:      # the window is already gone
            pass

    sys.excepthook = hook
