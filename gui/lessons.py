"""Lessons: File → Save lesson… / Open lesson…, and ``python main.py LESSON.json``.

A lesson (``core.lesson``, versioned JSON) holds the settings behind the current step, the
edited embeddings and weights, and the step. With a training run in the Train window (or a
snapshot shown as stage 4) it is saved with that run as ``LESSON.run.npz`` beside the JSON
(core.train.lessonrun); opening the lesson reopens the run without retraining, and a missing,
damaged or crafted run file (arrays larger than its settings imply, a zip bomb, probe tokens no
typed token could be, a link out of the lesson's folder) is one line in the status bar while the
lesson itself opens. Opening one reads and checks the whole file, and its run file, first, off
the UI thread: a malformed file gives a message and leaves the open lesson untouched.

The bars of stages 6–8 (decode, tiled attention, RoPE) are saved with it, under "stages": each
bar's options and pointer (:func:`stage_options`). A lesson without them (older files) opens
those bars at their defaults; a stage whose saved options are not valid (an unknown name, a value
of the wrong type, a combination its config refuses) opens at its defaults too, said in the
status line with the lesson (:func:`read_stage_options`), and nothing else of the lesson changes.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from gui.tasks import TaskRunner

FILTER = "Attention Stepper lessons (*.json);;All files (*)"
POINTER = {"decode": "position", "tiled": "pointer", "rope": "pointer"}   # the bar's slider, saved under this name
MAX_OPTION_CHARS = 100


def _defaults() -> dict:
    """Each stage's options as its bar opens (its controller's dataclass defaults)."""
    from gui.external_stage import SPECS
    return {stage: spec.options for stage, spec in SPECS.items()}


def stage_options(window) -> dict:
    """What the bars of stages 6–8 hold now: their options and (once the stage's trace is there)
    the slider's pointer, as plain JSON for the lesson's "stages"."""
    out = {}
    for stage, ctl in getattr(window, "external", {}).items():
        out[stage] = dataclasses.asdict(ctl.options)
        state = window.model.external[stage]
        if state.trace is not None:
            out[stage][POINTER[stage]] = int(state.pointer)
    return out


def _checked(stage: str, raw, default, chapter) -> tuple[object, int | None]:
    """(options, pointer) from one stage's saved dict; ValueError says what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError(f"must map option names to values, got {type(raw).__name__}")
    fields = {f.name: getattr(default, f.name) for f in dataclasses.fields(default)}
    values, pointer = {}, None
    for key, value in raw.items():
        if key == POINTER[stage]:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**6:
                raise ValueError(f"{key} must be a whole number ≥ 0, got {value!r:.40}")
            pointer = value
            continue
        if key not in fields:
            raise ValueError(f"unknown option {str(key)[:40]!r}")
        want = fields[key]
        if isinstance(want, bool):
            ok = isinstance(value, bool)
        elif isinstance(want, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**9
        elif isinstance(want, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and abs(value) < 1e300
            value = float(value) if ok else value
        else:
            ok = isinstance(value, str) and len(value) <= MAX_OPTION_CHARS
        if not ok:
            kind = {bool: "true or false", int: "a whole number", float: "a number"}.get(
                type(want), f"a string of at most {MAX_OPTION_CHARS} characters")
            raise ValueError(f"{key} must be {kind}, got {value!r:.40}")
        values[key] = value
    options = dataclasses.replace(default, **values)
    from core.config import ConfigError
    from gui.external_stage import SPECS, error_line
    try:
        SPECS[stage].config_for(options, chapter)
    except ConfigError as exc:
        raise ValueError(error_line(SPECS[stage], exc)) from None
    return options, pointer


def read_stage_options(raw, chapter=None) -> tuple[dict, str]:
    """The bars' options a lesson's "stages" holds: ({stage: (options, pointer or None)}, note).
    A stage absent (an older lesson) or whose options are not valid gets its bar's defaults;
    ``note`` is one line naming the bad ones ("" when none). ``chapter``: the lesson's config
    (what a "main text field" prompt reads)."""
    defaults = _defaults()
    out = {stage: (opt, None) for stage, opt in defaults.items()}
    if raw is None:
        return out, ""
    if not isinstance(raw, dict):
        return out, f"stages must map decode/tiled/rope to their options, got {type(raw).__name__}; the bars' defaults are used"
    bad = []
    for stage, default in defaults.items():
        if stage not in raw:
            continue
        try:
            out[stage] = _checked(stage, raw[stage], default, chapter)
        except Exception as exc:      # (a ValueError: what is wrong; anything else: never a traceback)
            bad.append(f"{stage}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if not bad:
        return out, ""
    return out, "; ".join(bad) + (" — that bar opens at its defaults" if len(bad) == 1
                                  else " — those bars open at their defaults")


class _PendingPointers:
    """Sliders a lesson set, applied when their stage's trace for the lesson's options arrives
    (a stage computes on its first visit: the pointer waits until then)."""

    def __init__(self, window):
        self.window = window
        self.want: dict[str, tuple[int, object]] = {}     # stage -> (pointer, the controller's config then)
        window.model.external_changed.connect(self.apply)

    def set(self, stage: str, pointer: int | None) -> None:
        self.want.pop(stage, None)
        if pointer is not None:
            self.want[stage] = (pointer, self.window.external[stage].config)
            self.apply(stage)

    def apply(self, stage: str) -> None:
        if stage not in self.want:
            return
        pointer, config = self.want[stage]
        m = self.window.model
        trace = m.external[stage].trace
        if trace is None or self.window.external[stage].busy:
            return
        del self.want[stage]
        if config is not None and trace.config != config:      # other options since: the pointer is stale
            return
        m.set_external_pointer(stage, pointer)


def apply_stage_options(window, lesson) -> str:
    """Set the bars of stages 6–8 from ``lesson`` (defaults where it has none or bad ones);
    returns the one-line note about bad ones ("" when none)."""
    if not getattr(window, "external", None):
        return ""
    chosen, note = read_stage_options(lesson.stages, lesson.config)
    pending = getattr(window, "_lesson_pointers", None)
    if pending is None:
        pending = window._lesson_pointers = _PendingPointers(window)
    for stage, (options, pointer) in chosen.items():
        ctl = window.external.get(stage)
        if ctl is None:
            continue
        ctl.set_options(**dataclasses.asdict(options))
        pending.set(stage, pointer)
    return note


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
    lesson = dataclasses.replace(current_lesson(window.controller, Path(path).stem), stages=stage_options(window))
    try:
        if run is None:
            written = write(lesson, path)
        else:
            from core.train.lessonrun import save_lesson_with_run
            written, npz = save_lesson_with_run(lesson, run, path, snapshot, layer)
            return f"Saved the lesson to {written}, its training run to {npz.name}"
    except LessonError as exc:
        return f"Could not save the lesson: {exc}"
    return f"Saved the lesson to {written}"


def apply_lesson(controller, lesson, run=None, window=None) -> str:
    """Show a checked lesson: its step, its settings and edits (computed off the UI thread); with
    its training run, the run in the Train window and, if saved so, a snapshot's layer as stage 4;
    with ``window``, the bars of stages 6–8 (set before the step, so a decode step computes once).
    Returns a one-line note about bar options it could not use ("" when none)."""
    note = apply_stage_options(window, lesson) if window is not None else ""
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
    return note


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
            bars = apply_lesson(window.controller, lesson, run, window)
            note = "; ".join(n for n in (note, bars) if n)
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
