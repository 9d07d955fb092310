"""Lessons: File → Save lesson… / Open lesson…, and ``python main.py LESSON.json``.

A lesson (``core.lesson``, versioned JSON) holds the settings behind the current step, the
edited embeddings and weights, and the step. With a training run in the Train window (or a
snapshot shown as stage 4) it is saved with that run as ``LESSON.run.npz`` beside the JSON
(core.train.lessonrun); opening the lesson reopens the run without retraining, and a missing,
damaged or crafted run file (arrays larger than its settings imply, a zip bomb, probe tokens no
typed token could be, a link out of the lesson's folder) is one line in the status bar while the
lesson itself opens. Opening one reads and checks the whole file, and its run file, first, off
the UI thread: a malformed file gives a message and leaves the open lesson untouched.
"""
from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from gui.tasks import TaskRunner

FILTER = "Attention Stepper lessons (*.json);;All files (*)"


def current_lesson(controller, title: str = ""):
    """The Lesson that reopens to the current step with the same numbers: the config and
    edits behind the trace on screen (not settings still being computed or refused)."""
    from core.config import AttentionConfig
    from core.lesson import Lesson
    model = controller.model
    # the chapter's trace on screen (also while stage 5 or a partial trace is shown); the settings
    # being typed may be refused ones
    trace = model.chapter_trace() or next(iter(model.traces.values()), None)
    if trace is not None:
        config = trace.config
        inputs, weights = model.applied.edits
    else:
        config = AttentionConfig(**controller.shown_config())
        inputs, weights = model.requested.edits
    return Lesson(config, inputs, dict(weights), controller.step.id, title)


def lesson_run(window) -> tuple:
    """(run, snapshot, layer) to save with the lesson: the run stage 4 shows a snapshot of, else
    the Train window's run with no snapshot; (None, None, None) when there is no run."""
    source = window.controller.model.applied.multihead_source if window.controller.trace is not None else None
    if source is not None:
        return source.run, source.index, source.layer
    view = getattr(window, "train_view", None)
    if view is not None and view.run is not None:
        return view.run, None, None
    return None, None, None


def save_lesson(window, path: str | None = None) -> str:
    """Write the lesson; returns the status message (empty when the dialog was cancelled)."""
    from core.lesson import LessonError, save_lesson as write
    if path is None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(window, "Save lesson", "lesson.json", FILTER)
        if not path:
            return ""
        if not Path(path).suffix:
            path += ".json"
    run, snapshot, layer = lesson_run(window)
    try:
        if run is None:
            written = write(current_lesson(window.controller, Path(path).stem), path)
        else:
            from core.train.lessonrun import save_lesson_with_run
            written, npz = save_lesson_with_run(current_lesson(window.controller, Path(path).stem), run, path,
                                                snapshot, layer)
            return f"Saved the lesson to {written}, its training run to {npz.name}"
    except LessonError as exc:
        return f"Could not save the lesson: {exc}"
    return f"Saved the lesson to {written}"


def apply_lesson(controller, lesson, run=None, window=None) -> None:
    """Show a checked lesson: its step, its settings and edits (computed off the UI thread); with
    its training run, the run in the Train window and, if saved so, a snapshot's layer as stage 4."""
    index = next((i for i, s in enumerate(controller.steps) if s.id == lesson.step), controller.index)
    controller.go(index)
    multihead, source = {}, None
    if run is not None:
        ref = lesson.run
        if ref is not None and ref.snapshot is not None and ref.snapshot < len(run.snapshots) \
                and ref.layer < run.settings.num_layers:
            from core.train.stepper import stepper_source
            source = stepper_source(run, ref.snapshot, ref.layer)
            multihead = source.multihead
        if window is not None:
            from gui import train_window
            train_window.train_view(window).show_run(run, None if source is None else source.index)
    controller.restore("custom", lesson.config.to_dict(), lesson.inputs, lesson.weights, multihead=multihead,
                       multihead_source=source)


class LessonOpener(QtCore.QObject):
    """Opens lesson files for one window: read and checked on a worker thread (a FIFO, a slow disk
    or a 16 MiB file never blocks the UI), applied on the UI thread. The latest open wins."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self._opening: tuple | None = None        # the latest open's (path, show_box, on_done) until applied
        self._reader = TaskRunner(read_lesson, "lesson-reader", thread_per_task=True, drop_stale=True, parent=self)
        self._reader.done.connect(self._on_read)

    @property
    def busy(self) -> bool:
        """A lesson is being read (its settings are not applied yet)."""
        return self._opening is not None

    def open(self, path: str, show_box: bool = True, on_done=None) -> None:
        self._opening = (path, show_box, on_done)
        self._reader.submit(path)

    def _on_read(self, outcome: tuple) -> None:
        (path, show_box, on_done), self._opening = self._opening, None
        (lesson, run, note), message = outcome
        window = self.window
        if lesson is None:
            window.statusBar().showMessage(f"Lesson not opened: {message}", 15000)
            if show_box:       # window-modal but not blocking (also at start-up, before the event loop)
                box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "Cannot open the lesson",
                                            message, QtWidgets.QMessageBox.StandardButton.Ok, window)
                box.setObjectName("lessonMessage")
                box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
                box.open()
        else:
            apply_lesson(window.controller, lesson, run, window)
            window.statusBar().showMessage(f"Opened lesson {Path(path).name}"
                                           + (f": {lesson.title}" if lesson.title else "")
                                           + (f"; {note}" if note else ""), 15000 if note else 10000)
        if on_done is not None:
            on_done(message)


def read_lesson(path: str, _task) -> tuple:
    """Read and check a lesson (on a reader thread): ((Lesson, run, note), "") or ((None, None, ""), message)."""
    from core.lesson import LessonError, load_lesson
    lesson, message, run, note = None, "", None, ""
    try:
        lesson = load_lesson(path)
        if lesson.run is not None:
            from core.train.lessonrun import open_lesson_run
            run, note = open_lesson_run(lesson, path)
    except LessonError as exc:
        lesson, run, note, message = None, None, "", str(exc)
    except Exception as exc:      # never a traceback for the learner
        lesson, run, note = None, None, ""
        message = f"{path} cannot be opened as a lesson ({type(exc).__name__}: {exc})"
    return (lesson, run, note), message


def lesson_opener(window) -> LessonOpener:
    opener = getattr(window, "lesson_opener", None)
    if opener is None:
        opener = window.lesson_opener = LessonOpener(window)
    return opener


def open_lesson(window, path: str | None = None, show_box: bool = True, on_done=None) -> str | None:
    """Open a lesson: "" when the file dialog was cancelled, else None and the file is read and
    checked off the UI thread, then shown (or its message put in a box and the status bar);
    ``on_done(message)`` follows on the UI thread, with "" when the lesson was opened."""
    if path is None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(window, "Open lesson", "", FILTER)
        if not path:
            return ""
    lesson_opener(window).open(path, show_box, on_done)
    return None
