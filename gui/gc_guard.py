"""Python's garbage collector runs on the GUI thread only, from a timer.

Automatic collection runs on whichever thread happens to allocate when a threshold is crossed,
often the trace worker (torch allocates a lot). Collecting a cycle there that holds a Qt
connection disconnects it from the worker thread: Qt locks its connection mutex, then PySide
asks for the GIL to look up a Python override, while the GUI thread holds the GIL and waits
for the same mutex (QTextEdit.setHtml disconnecting its document). The app froze for good;
the soak test (tests/gui/test_soak.py) ran into it. This is the usual PyQt/PySide remedy:
automatic collection off while threads run, and the same generational schedule driven by a
QTimer on the GUI thread.
"""
from __future__ import annotations

import gc
import threading

from PySide6 import QtCore

INTERVAL_MS = 250
# Not a cache: how many guards run. The collector's on/off switch is process-wide, so is the
# count of guards that turned it off (two windows in one test process share it).
_lock = threading.Lock()
_users = 0
_was_enabled = True


class MainThreadGC(QtCore.QObject):
    """While at least one guard runs, automatic GC is off and its timer collects on this thread."""

    def __init__(self, parent: QtCore.QObject | None = None, interval_ms: int = INTERVAL_MS):
        super().__init__(parent)
        global _users, _was_enabled
        with _lock:
            if _users == 0:
                _was_enabled = gc.isenabled()
                gc.disable()
            _users += 1
        self._running = True
        self.collections = 0
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    def check(self) -> None:
        """Collect the generations whose thresholds are crossed, as automatic GC would."""
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        if t0 and c0 > t0:
            gen = 2 if (c1 > t1 and c2 > t2) else 1 if c1 > t1 else 0
            gc.collect(gen)
            self.collections += 1

    def stop(self) -> None:
        """Stop collecting here; the last guard stopped gives automatic GC back."""
        global _users
        if not self._running:
            return
        self._running = False
        self.timer.stop()
        with _lock:
            _users -= 1
            if _users == 0 and _was_enabled:
                gc.enable()
