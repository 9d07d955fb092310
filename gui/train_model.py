"""The Train view's state, Qt-free: the run on screen, its snapshots and loss curves, the training.

Like :class:`gui.view_model.ViewModel`: plain Python with observer lists (:class:`Event`), so it
runs and is tested without a QApplication. :class:`gui.train_view.TrainView` owns one, feeds it
what the training reports (``begin``, ``report``, ``add_snapshot``, ``end``) or a run opened from
a file (``adopt``) and redraws on its events. Every method brings the state up to date before
it emits. ``train_work`` is the training as background work (gui.tasks.TaskRunner runs it).
"""
from __future__ import annotations

import time

from gui.view_model import Event

PROGRESS_INTERVAL_S = 0.033  # train_work sends the per-step losses in batches, at most ~30 per second


def _empty_history() -> dict[str, list[float]]:
    return {"step": [], "loss": [], "first": [], "second": []}


class TrainModel:
    """One training session: what the timeline scrubs and the curves show."""

    def __init__(self):
        self.run = None                                  # the finished or opened TrainRun
        self.snapshots: list = []                        # what the timeline scrubs (live while training)
        self.probe_tokens: tuple[str, ...] = ()
        self.history = _empty_history()                  # per step: loss, first- and second-half loss
        self.step = 0                                    # the last step reported
        self.control = None                              # the running training's TrainControl, else None
        self.started = Event("started")                  # (settings): a training began, everything cleared
        self.probe_changed = Event("probe_changed")      # (tokens)
        self.losses_added = Event("losses_added")        # (batch of (step, steps, loss, first, second))
        self.snapshot_added = Event("snapshot_added")    # (index)
        self.run_changed = Event("run_changed")          # (run): a finished or opened run is shown
        self.ended = Event("ended")                      # (outcome): ("finished", run), ("cancelled",), ("failed", field, message)

    @property
    def training(self) -> bool:
        return self.control is not None

    def begin(self, settings, control) -> None:
        """A training starts (``control``: its core.train.runner.TrainControl)."""
        self.run, self.snapshots, self.probe_tokens = None, [], ()
        self.history = _empty_history()
        self.step = 0
        self.control = control
        self.started.emit(settings)

    def report(self, report: tuple) -> None:
        """What train_work reports: ("start", probe tokens) or ("losses", batch)."""
        kind, value = report
        if kind == "start":
            self.probe_tokens = tuple(value)
            self.probe_changed.emit(self.probe_tokens)
        else:
            self.add_losses(value)

    def add_losses(self, batch: list) -> None:
        for step, _total, loss, first, second in batch:
            self.history["step"].append(step)
            self.history["loss"].append(loss)
            self.history["first"].append(first)
            self.history["second"].append(second)
        if batch:
            self.step = batch[-1][0]
        self.losses_added.emit(batch)

    def add_snapshot(self, snap) -> None:
        self.snapshots.append(snap)
        self.snapshot_added.emit(len(self.snapshots) - 1)

    def end(self, outcome: tuple) -> None:
        """The training ended; a finished run is adopted (``run_changed``) before ``ended``."""
        self.control = None
        if outcome[0] == "finished":
            self.adopt(outcome[1])
        self.ended.emit(outcome)

    def adopt(self, run) -> None:
        """Show a finished or opened run: its snapshots, probe and curves."""
        self.run = run
        self.snapshots = list(run.snapshots)
        self.probe_tokens = tuple(run.probe_tokens)
        n = len(run.history_loss)
        self.history = {"step": list(range(1, n + 1)), "loss": list(run.history_loss),
                        "first": list(run.history_first), "second": list(run.history_second)}
        self.step = n
        self.run_changed.emit(run)


def train_work(request: tuple, task) -> tuple:
    """One training, off the UI thread (gui.tasks.TaskRunner): ``request`` is (settings,
    train_fn, control). Snapshots go to ``task.partial``; ("start", probe tokens) and
    ("losses", [(step, steps, loss, first-half loss, second-half loss), …]) to ``task.progress``.
    The steps' losses are sent in batches, one every PROGRESS_INTERVAL_S (fewer UI-thread
    wake-ups), at once for the last step or when paused, so that the bar shows where the run
    stopped. Returns ("finished", run), ("cancelled",) or ("failed", field, message)."""
    from core.train.runner import TrainCancelled
    from core.train.settings import TrainSettingsError
    settings, train_fn, control = request
    task.on_cancel(control.cancel)
    pending: list[tuple] = []
    sent_at = 0.0

    def flush(now: float) -> None:
        nonlocal pending, sent_at
        if pending:
            batch, pending = pending, []
            sent_at = now
            task.progress(("losses", batch))

    def on_progress(*values) -> None:
        pending.append(values)
        now = time.perf_counter()
        if now - sent_at >= PROGRESS_INTERVAL_S or values[0] >= values[1] or control.paused:
            flush(now)

    def on_snapshot(snap) -> None:
        flush(time.perf_counter())     # the steps up to the snapshot arrive before it
        task.partial(snap)

    try:
        try:
            run = train_fn(settings, control, on_snapshot=on_snapshot, on_progress=on_progress,
                           on_start=lambda run: task.progress(("start", tuple(run.probe_tokens))))
        finally:
            flush(time.perf_counter())
    except TrainCancelled:
        return ("cancelled",)
    except TrainSettingsError as exc:
        return ("failed", exc.field, exc.message)
    except Exception as exc:  # never a traceback in the UI: one line naming what failed
        return ("failed", "", f"training failed: {type(exc).__name__}: {exc}")
    return ("finished", run)
