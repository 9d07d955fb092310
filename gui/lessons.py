"""Lessons: File → Save lesson… / Open lesson…, and ``python main.py LESSON.json``.

A lesson (``core.lesson``, versioned JSON) holds the settings behind the current step, the
edited embeddings and weights, and the step. Opening one reads and checks the whole file
first: a malformed file gives a message and leaves the open lesson untouched.
"""
from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

FILTER = "Attention Stepper lessons (*.json);;All files (*)"


def current_lesson(controller, title: str = ""):
    """The Lesson that reopens to the current step with the same numbers: the config and
    edits behind the trace on screen (not settings still being computed or refused)."""
    from core.config import AttentionConfig
    from core.lesson import Lesson
    trace = controller.trace
    if trace is not None:
        config = trace.config
        inputs, weights = controller.applied_edits
    else:
        config = AttentionConfig(**controller.shown_config())
        inputs, weights = controller.inputs, controller.weights
    return Lesson(config, inputs, dict(weights), controller.step.id, title)


def save_lesson(window, path: str | None = None) -> str:
    """Write the lesson; returns the status message (empty when the dialog was cancelled)."""
    from core.lesson import LessonError, save_lesson as write
    if path is None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(window, "Save lesson", "lesson.json", FILTER)
        if not path:
            return ""
        if not Path(path).suffix:
            path += ".json"
    try:
        written = write(current_lesson(window.controller, Path(path).stem), path)
    except LessonError as exc:
        return f"Could not save the lesson: {exc}"
    return f"Saved the lesson to {written}"


def apply_lesson(controller, lesson) -> None:
    """Show a checked lesson: its step, its settings and edits (computed off the UI thread)."""
    index = next((i for i, s in enumerate(controller.steps) if s.id == lesson.step), controller.index)
    controller.go(index)
    controller.restore("custom", lesson.config.to_dict(), lesson.inputs, lesson.weights)


def open_lesson(window, path: str | None = None, show_box: bool = True) -> str | None:
    """Open a lesson; returns None on success, else the message (shown in a box and the status bar)."""
    from core.lesson import LessonError, load_lesson
    if path is None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(window, "Open lesson", "", FILTER)
        if not path:
            return ""
    try:
        lesson = load_lesson(path)
    except LessonError as exc:
        message = str(exc)
        window.statusBar().showMessage(f"Lesson not opened: {message}", 15000)
        if show_box:       # window-modal but not blocking (also at start-up, before the event loop)
            box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "Cannot open the lesson",
                                        message, QtWidgets.QMessageBox.StandardButton.Ok, window)
            box.setObjectName("lessonMessage")
            box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()
        return message
    apply_lesson(window.controller, lesson)
    window.statusBar().showMessage(f"Opened lesson {Path(path).name}"
                                   + (f": {lesson.title}" if lesson.title else ""), 10000)
    return None
