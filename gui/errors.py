"""Unexpected errors: a dialog with the details and "Copy report", a log file; the app keeps running.

Expected problems (bad settings, a failed export, …) never get here: they become messages
next to their control or in the status bar. What does get here is a bug. PySide6 reports an
exception raised in a slot or a virtual method through ``sys.excepthook`` (and one raised in
a Python thread through ``threading.excepthook``); the hook installed by
:func:`install_excepthook`

- appends the report (versions and the traceback) to ``<app data>/errors.log``
  (``QStandardPaths.AppDataLocation``; the log is kept under 1 MB, the older half in
  ``errors.log.1``),
- shows one line in the status bar and a non-modal dialog with the details and a
  "Copy report" button (further errors while it is open are added to the same dialog, so
  a repeating error cannot bury the window in dialogs),
- and returns: the event loop, and so the app, keeps running.

Errors raised on another thread are shown on the GUI thread (a queued signal). An error
raised while reporting one goes to the previous hook (stderr) instead of looping.
"""
from __future__ import annotations

import datetime
import platform
import sys
import threading
import traceback
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

MAX_LOG_BYTES = 1_000_000
MAX_DIALOG_REPORTS = 20          # reports kept in an open dialog (the log keeps every one)
_log_lock = threading.Lock()


def log_path() -> Path:
    base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".attention-stepper") / "errors.log"


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("attention-stepper")
    except Exception:
        return "unknown"


def report_text(exc_type, exc, tb) -> str:
    """The report the log and "Copy report" get: when, versions, then the traceback."""
    lines = [
        f"Attention Stepper {_version()} — unexpected error at "
        f"{datetime.datetime.now().isoformat(timespec='seconds')}",
        f"Python {platform.python_version()} · PySide6 {_pyside_version()} · Qt {QtCore.qVersion()} · "
        f"{platform.platform()}",
    ]
    torch = sys.modules.get("torch")          # never import torch just to report an error
    if torch is not None:
        lines.append(f"torch {getattr(torch, '__version__', '?')}")
    lines.append(f"thread: {threading.current_thread().name}")
    lines.append("")
    lines.append("".join(traceback.format_exception(exc_type, exc, tb)).rstrip())
    return "\n".join(lines) + "\n"


def _pyside_version() -> str:
    try:
        import PySide6
        return PySide6.__version__
    except Exception:
        return "?"


def write_log(text: str) -> Path | None:
    """Append one report to the log (rotating it past MAX_LOG_BYTES); None if it cannot be written."""
    path = log_path()
    try:
        with _log_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                if path.stat().st_size > MAX_LOG_BYTES:
                    path.replace(path.with_name(path.name + ".1"))
            except FileNotFoundError:
                pass
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"--- {text}\n")
        return path
    except OSError:
        return None


def summary_line(exc_type, exc) -> str:
    text = f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__
    text = text.splitlines()[0] if text else exc_type.__name__
    return text if len(text) <= 200 else text[:199] + "…"


class ErrorDialog(QtWidgets.QDialog):
    """Details of unexpected errors, with "Copy report" (puts every report on the clipboard)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("errorDialog")
        self.setWindowTitle("Attention Stepper — unexpected error")
        self.setModal(False)
        self.reports: list[str] = []
        self.count = 0
        self.message = QtWidgets.QLabel(objectName="errorMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QtWidgets.QPlainTextEdit(objectName="errorDetails")
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.details.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.where = QtWidgets.QLabel(objectName="errorLog")
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_button = QtWidgets.QPushButton("Copy report", objectName="copyReport")
        self.copy_button.setToolTip("Put the full report on the clipboard (paste it into a bug report)")
        self.copy_button.clicked.connect(self.copy_report)
        self.close_button = QtWidgets.QPushButton("Close", objectName="closeError")
        self.close_button.setDefault(True)
        self.close_button.clicked.connect(self.close)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.message)
        lay.addWidget(self.details, 1)
        lay.addWidget(self.where)
        lay.addLayout(buttons)
        self.resize(720, 420)

    def add(self, summary: str, report: str, log: Path | None) -> None:
        self.count += 1
        self.reports = (self.reports + [report])[-MAX_DIALOG_REPORTS:]
        more = f" ({self.count} errors since this window opened)" if self.count > 1 else ""
        self.message.setText(
            f"<b>Something went wrong{more}.</b> The app keeps running; your settings and the "
            f"last computed trace are kept.<br>{_escape(summary)}")
        self.details.setPlainText(self.report())
        self.details.moveCursor(QtGui.QTextCursor.MoveOperation.End)
        self.where.setText(f"Logged to {log}" if log else "The log file could not be written.")

    def report(self) -> str:
        return "\n".join(self.reports)

    def copy_report(self) -> None:
        QtWidgets.QApplication.clipboard().setText(self.report())
        self.copy_button.setText("Copied")

    def reset(self) -> None:
        """Forget the reports shown (the dialog was closed: the next error starts afresh)."""
        self.reports, self.count = [], 0
        self.copy_button.setText("Copy report")


def _escape(text: str) -> str:
    import html
    return html.escape(text)


class ErrorReporter(QtCore.QObject):
    """Shows reports on the GUI thread; :attr:`dialog` is the dialog (None before the first)."""

    reported = QtCore.Signal(str, str, object)     # summary, report, log path (queued across threads)

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.dialog: ErrorDialog | None = None
        self.reported.connect(self._show)

    @QtCore.Slot(str, str, object)
    def _show(self, summary: str, report: str, log) -> None:
        where = f" (details in {log})" if log else ""
        try:
            self.window.statusBar().showMessage(f"Unexpected error: {summary}{where}", 20000)
        except RuntimeError:          # the window is already gone
            return
        if self.dialog is None:
            self.dialog = ErrorDialog(self.window)
        if not self.dialog.isVisible():      # closed (Close, Esc or the title bar): start afresh
            self.dialog.reset()
        self.dialog.add(summary, report, log)
        self.dialog.show()
        self.dialog.raise_()


def install_excepthook(window) -> ErrorReporter:
    """Report unexpected errors on ``window`` (see the module docstring); returns the reporter."""
    previous = sys.excepthook
    reporter = ErrorReporter(window)
    state = threading.local()

    def handle(exc_type, exc, tb) -> None:
        if getattr(state, "busy", False):           # an error while reporting one: no loop
            previous(exc_type, exc, tb)
            return
        state.busy = True
        try:
            report = report_text(exc_type, exc, tb)
            log = write_log(report)
            sys.stderr.write(report)
            try:
                reporter.reported.emit(summary_line(exc_type, exc), report, log)
            except RuntimeError:                    # the reporter is already gone (app quitting)
                pass
        except Exception:
            previous(exc_type, exc, tb)
        finally:
            state.busy = False

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        handle(exc_type, exc, tb)

    def thread_hook(args):
        if args.exc_type is SystemExit:
            return
        handle(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = hook
    threading.excepthook = thread_hook
    return reporter
