"""The one background helper: work runs off the UI thread, its results come back as signals.

``TaskRunner(work, name)`` runs ``work(request, task)`` for each ``submit(request)`` on a
background thread. The latest submission wins: a request not started yet is replaced, and the
one running is told through ``task.cancelled()`` (cooperative: the work polls it between its
pieces, or registers ``task.on_cancel(fn)`` to pass the word on, e.g. to a training's control).
``cancel()`` tells it the same without a new request; ``stop()`` ends the thread (before quit).
What the work returns goes out as ``done``, what it passes to ``task.partial`` as ``partial``
and to ``task.progress`` as ``progress``, all three emitted on the runner's (the UI) thread,
in order: any slot or lambda may touch widgets. With ``drop_stale`` those of a superseded
request are dropped there, so a slot only sees the latest one's.

Priority: ``low_priority`` lowers the thread's priority (nice +5 on Linux, inherited by the
threads torch starts from it) so it yields the CPU to the window's thread. ``thread_per_task``
runs each request on a thread of its own, for work that may block for good (reading a FIFO):
a newer request never waits behind it.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Callable

from PySide6.QtCore import QObject, QThread, Qt, Signal

BACKGROUND_NICE = 5      # how much less CPU a background thread gets than the window's, when both want it


def lower_priority() -> None:
    """Let the calling (background) thread yield the CPU to the window's thread when both want
    it, e.g. the rest of a trace computing while the window paints the visible stage (2 cores:
    the paint took up to 1.5× as long) or a training run while the view redraws. On Linux the
    thread's nice value (the OpenMP threads torch starts from it inherit it), elsewhere Qt's
    low priority. Best effort: where the system refuses, nothing changes."""
    try:
        if sys.platform.startswith("linux"):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE))
        else:
            QThread.currentThread().setPriority(QThread.Priority.LowPriority)
    except (OSError, AttributeError, RuntimeError):
        pass


def _name_thread(name: str) -> None:
    """The system's name of the calling thread (what ``top -H`` and /proc show); best effort."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)     # PR_SET_NAME
        except (OSError, AttributeError):
            pass


class Task:
    """What a piece of work sees of its run: whether to stop, and where to report.

    Made by a TaskRunner; tests make one directly (``Task(cancelled=lambda: True)``)."""

    def __init__(self, cancelled: Callable[[], bool] = lambda: False,
                 progress: Callable[[object], None] = lambda _v: None,
                 partial: Callable[[object], None] = lambda _v: None):
        self._cancelled = cancelled
        self.progress = progress          # progress(value): the runner's ``progress`` signal
        self.partial = partial            # partial(value): a partial result, the ``partial`` signal
        self._on_cancel: list[Callable[[], None]] = []

    def cancelled(self) -> bool:
        """Whether a newer request, ``cancel()`` or ``stop()`` came since this one started."""
        return self._cancelled()

    def on_cancel(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` (on whichever thread cancels) when this task is cancelled: at once if it
        is already; ``fn`` should be idempotent (a cancel racing the registration calls it twice)."""
        self._on_cancel.append(fn)
        if self.cancelled():
            fn()


class TaskRunner(QObject):
    """Runs ``work(request, task)`` off the UI thread, the latest request winning (see module)."""

    done = Signal(object)          # what the work returned
    partial = Signal(object)       # what it passed to task.partial
    progress = Signal(object)      # what it passed to task.progress
    _relay = Signal(int, str, object)    # (ticket, signal name, value), queued to the UI thread

    def __init__(self, work: Callable[[object, Task], object], name: str, *, low_priority: bool = False,
                 thread_per_task: bool = False, drop_stale: bool = False, parent: QObject | None = None):
        super().__init__(parent)
        self._work = work
        self._name = name
        self._low_priority = low_priority
        self._per_task = thread_per_task
        self._drop_stale = drop_stale
        self._cond = threading.Condition()
        self._ticket = 0                   # the latest request's
        self._cancelled_upto = 0           # every ticket up to this one is cancelled
        self._pending: tuple[int, object] | None = None
        self._running: dict[int, Task] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._relay.connect(self._on_relay, Qt.ConnectionType.QueuedConnection)

    # ---- the UI thread's side ------------------------------------------------------------------
    def submit(self, request) -> int:
        """Run ``request`` as soon as the thread is free; the one pending (if any) is dropped and
        the one running is cancelled. Returns the request's ticket."""
        with self._cond:
            self._stopping = False
            self._ticket += 1
            ticket = self._ticket
            newly = self._cancel_upto(ticket - 1)
            if self._per_task:
                threading.Thread(target=self._run_one, args=(ticket, request), name=self._name,
                                 daemon=True).start()
                self._running[ticket] = None        # busy from now on (the thread fills it in)
            else:
                self._pending = (ticket, request)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                    self._thread.start()
                self._cond.notify_all()
        self._call(newly)
        return ticket

    def cancel(self) -> None:
        """Drop the request pending and cancel the one running (it may still report)."""
        with self._cond:
            self._pending = None
            newly = self._cancel_upto(self._ticket)
            self._cond.notify_all()
        self._call(newly)

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Cancel everything and wait (at most ``timeout_ms``) for the work running to return and
        the thread to end; nothing is reported any more. A later ``submit`` starts afresh.
        False if something still runs."""
        with self._cond:
            self._stopping = True
            self._pending = None
            newly = self._cancel_upto(self._ticket)
            thread = self._thread
            self._cond.notify_all()
        self._call(newly)
        idle = self.wait(timeout_ms)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_ms / 1000)
            return idle and not thread.is_alive()
        return idle

    def busy(self) -> bool:
        """A request is pending or running."""
        with self._cond:
            return self._pending is not None or bool(self._running)

    def wait(self, timeout_ms: int | None = None) -> bool:
        """Block until no request is pending or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._running,
                                       None if timeout_ms is None else timeout_ms / 1000)

    def is_running(self) -> bool:
        """The (long-lived) thread exists: started by a submit, not stopped since."""
        with self._cond:
            return self._thread is not None and self._thread.is_alive()

    def _on_relay(self, ticket: int, name: str, value) -> None:
        if not self._stopping and (ticket == self._ticket or not self._drop_stale):
            getattr(self, name).emit(value)

    # ---- both threads ---------------------------------------------------------------------------
    def _cancel_upto(self, ticket: int) -> list[Task]:
        """(under the lock) Mark tickets up to ``ticket`` cancelled; the running tasks that were not."""
        newly = [t for k, t in self._running.items() if t is not None and self._cancelled_upto < k <= ticket]
        self._cancelled_upto = max(self._cancelled_upto, ticket)
        return newly

    @staticmethod
    def _call(tasks: list[Task]) -> None:
        for task in tasks:
            for fn in task._on_cancel:
                fn()

    def _is_cancelled(self, ticket: int) -> bool:
        return ticket <= self._cancelled_upto or self._stopping

    # ---- the background thread's side --------------------------------------------------------
    def _serve(self) -> None:
        _name_thread(self._name)
        if self._low_priority:
            lower_priority()             # before torch starts its threads from this one
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    self._thread = None
                    self._cond.notify_all()
                    return
                (ticket, request), self._pending = self._pending, None
                self._running[ticket] = None
            self._run(ticket, request)

    def _run_one(self, ticket: int, request) -> None:
        _name_thread(self._name)
        if self._low_priority:
            lower_priority()
        self._run(ticket, request)

    def _run(self, ticket: int, request) -> None:
        task = Task(lambda: self._is_cancelled(ticket),
                    lambda v: self._emit(ticket, "progress", v), lambda v: self._emit(ticket, "partial", v))
        with self._cond:
            self._running[ticket] = task
        try:
            result = self._work(request, task)
        except Exception:                # the work reports its own errors; anything else is a bug
            threading.excepthook(threading.ExceptHookArgs((*sys.exc_info(), threading.current_thread())))
        else:
            self._emit(ticket, "done", result)
        finally:
            with self._cond:
                self._running.pop(ticket, None)
                self._cond.notify_all()

    def _emit(self, ticket: int, name: str, value) -> None:
        if self._stopping:
            return
        try:
            self._relay.emit(ticket, name, value)
        except RuntimeError:             # the runner was deleted (its window closed) meanwhile
            pass
