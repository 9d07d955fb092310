"""The controller: a thin Qt service that turns settings into traces for the view model.

It owns the :class:`gui.view_model.ViewModel` (``controller.model``: requested and applied
settings, step, traces, config, focus — what every view observes). Every change is a new frozen
:class:`gui.settings.Settings` (``set_params``, ``set_edits``, ``reset_edits``, ``use_book``,
``restore`` build it: the drop rules are the Settings'): it becomes ``model.requested``, is
validated when core is loaded (a ConfigError becomes ``error(field, message)`` and the last good
traces stay), then computed off the UI thread by :func:`gui.worker.trace_runner` (the latest
request wins; the step on screen's stages first, gui.scheduler). A result puts its traces and
the Settings they came from (``model.applied``) into the model; a refused edit puts
``requested``'s edits back to ``applied``'s, and a refused change after a first part drops that
part for the last complete traces. The controller keeps no settings of its own: ``params``,
``inputs``, ``weights``, ``multihead`` are read-only views of ``model.requested``.

The model's main events are re-emitted as Qt signals (``trace_changed``, ``step_changed``,
``config_changed``, ``mode_changed``) for code that waits on them. ``core`` (and so torch) is
imported lazily: in the worker on the first compute, and here only once the worker has loaded
it, so the window appears before torch is.

Two modes: "book" shows every step from its chapter section's config (core.book), so each
step prints the chapter's numbers; "custom" shows every step from one config.
"""
from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

from gui.settings import CUSTOM, Settings, edit_refused
from gui.steps import Step
from gui.view_model import ViewModel
from gui.worker import Request, Result, trace_runner

BOOK_TEXT = "Your journey starts with one step"   # core.config.BOOK_TEXT (a test checks they agree)


class Controller(QObject):
    trace_changed = Signal()            # a request's traces are complete and in place (the model's
                                        # trace_changed also fires for its first part, drawn first)
    step_changed = Signal(int)          # model.step_changed: index into steps
    config_changed = Signal(object)     # model.config_changed: the AttentionConfig the panel shows
    mode_changed = Signal(str)          # model.mode_changed: "book" or "custom"
    error = Signal(str, str)            # (field, message); field "" = not tied to a control
    error_cleared = Signal()
    busy = Signal(bool)
    notice = Signal(str)                # informational status-bar message (e.g. CUDA fallback)

    def __init__(self, parent: QObject | None = None, worker=None):
        super().__init__(parent)
        self.model = ViewModel()                  # requested/applied Settings, traces, step, …
        self.sections: dict[str, dict] = {}       # book section -> config dict (from the worker)
        self.cuda_available = False
        self._shown_section = self.model.step.section   # the section whose config the model holds
        self._book_traces: dict[str, object] = {}  # computed once
        self._last_id = 0                         # the request whose result is awaited
        self._busy = False
        from gui.gc_guard import MainThreadGC
        self._gc = MainThreadGC(self)             # GC on this thread only (a GC on the worker could deadlock)
        self._worker = worker or trace_runner()       # gui.tasks.TaskRunner
        self._worker.partial.connect(self._on_done)
        self._worker.done.connect(self._on_done)
        m = self.model
        m.step_changed.connect(self._on_step)
        m.step_changed.connect(self.step_changed.emit)
        m.config_changed.connect(self.config_changed.emit)
        m.mode_changed.connect(self.mode_changed.emit)
        from gui.pretrained_controller import PretrainedController
        self.pretrained = PretrainedController(m, self)   # stage 5: loads the real model on first use

    # ---- state (the model's) ---------------------------------------------------------------
    @property
    def steps(self) -> tuple[Step, ...]:
        return self.model.steps

    @property
    def index(self) -> int:
        return self.model.index

    @property
    def step(self) -> Step:
        return self.model.step

    @property
    def mode(self) -> str:
        return self.model.mode

    # the settings asked for last (model.requested), as plain copies for callers that keep them
    @property
    def params(self) -> dict | None:
        """The attempted custom config (may be invalid); None in the Book preset."""
        params = self.model.requested.params
        return dict(params) if params is not None else None

    @property
    def inputs(self):
        """Edited embeddings (core.inputs.Inputs) or None."""
        return self.model.requested.inputs

    @property
    def weights(self) -> dict:
        """Edited W_query/W_key/W_value."""
        return dict(self.model.requested.weights)

    @property
    def multihead(self) -> dict:
        """Stage 4's own weights (a trained snapshot's)."""
        return dict(self.model.requested.multihead)

    @property
    def multihead_source(self):
        return self.model.requested.multihead_source

    @property
    def has_trace(self) -> bool:
        return self.model.has_trace

    def trace_for(self, step: Step | None = None):
        """The trace the given (default: current) step is drawn from, or None before the first."""
        return self.model.trace_for(step)

    @property
    def trace(self):
        return self.model.trace

    @property
    def traces_mode(self) -> str | None:
        """The mode of the traces on screen ("book"/"custom"; None before the first)."""
        return self.model.traces_mode

    @property
    def section_titles(self) -> dict[str, str]:
        return self.model.section_titles

    def shown_config(self) -> dict:
        """The config behind the current step (what the parameter panel shows)."""
        params = self.model.requested.params
        if self.mode == CUSTOM and params is not None:
            return dict(params)
        # stage 5 has no book section: the chapter's settings are its last section's (a change
        # made there starts from them, not from nothing)
        return dict(self.sections.get(self.model.chapter_step().section, {}))

    def section_title(self, section: str) -> str:
        return self.model.section_title(section)

    def is_busy(self) -> bool:
        return self._busy

    # ---- navigation (the model's; views may call model.go directly) -----------------------
    def go(self, index: int) -> None:
        self.model.go(index)

    def next(self) -> None:
        self.model.next()

    def back(self) -> None:
        self.model.back()

    def first(self) -> None:
        self.model.first()

    def last(self) -> None:
        self.model.last()

    def _on_step(self, _index: int) -> None:
        """Book preset: a step of another chapter section shows that section's config."""
        section = self.model.step.section
        if section != self._shown_section:
            self._shown_section = section
            if self.mode == "book" and self.sections:
                self._show_config()

    def _show_config(self) -> None:
        """Give the model the config behind the current step, as a frozen AttentionConfig."""
        self._shown_section = self.model.step.section
        shown = self.shown_config()
        if not shown:
            return
        from core.config import AttentionConfig, ConfigError
        try:
            config = AttentionConfig(**shown)
        except (ConfigError, TypeError):   # not reached: shown only after a trace was computed from it
            return
        self.model.set_config(config)

    # ---- settings: each change is a new Settings, requested, validated, then computed ---------
    def set_params(self, **changes) -> None:
        """Change config fields; leaves the Book preset (a custom config from the shown one)."""
        base = self.shown_config() or dict(self.params or {})   # nothing computed yet: the worker checks
        settings = self.model.requested.changed(base, **changes)
        self.model.request(settings)
        if not self._validate(settings.params):
            self._last_id += 1            # a result still in flight is for older settings: drop it
            self._set_busy(False)
            self.model.drop_partial()
            return
        self._submit(settings)

    def set_edits(self, inputs=None, weights: dict | None = None) -> None:
        """Recompute the shown config with edited embeddings and/or W_query/W_key/W_value.

        Leaves the Book preset like a parameter change; ``inputs`` None keeps the current
        edits, weights are merged in. A bad edit becomes ``error`` and the last trace stays.
        """
        base = self.shown_config() or dict(self.params or {})
        self._request(self.model.requested.with_edits(base, inputs, weights))

    def reset_edits(self) -> None:
        """Drop edited embeddings and weights (back to the config's preset)."""
        settings = self.model.requested.without_edits()
        self.model.request(settings)
        if settings.mode == CUSTOM and settings.params is not None:
            self._submit(settings)

    def use_book(self) -> None:
        """The Book preset: every step from its chapter section's config."""
        self.model.request(Settings.BOOK)
        self.error_cleared.emit()
        if self._book_traces:
            self._last_id += 1           # drop any custom result still in flight
            self._set_busy(False)
            self._install("book", self._book_traces, Settings.BOOK)
            self.trace_changed.emit()
            return
        self._submit(Settings.BOOK)

    def restore(self, mode: str, params: dict | None, inputs=None, weights: dict | None = None,
                multihead: dict | None = None, multihead_source=None) -> None:
        """Start from saved settings (QSettings, a lesson, a training snapshot); falls back to the
        book if they fail. ``multihead``: stage 4's own W_query, W_key, W_value, W_out, b_out."""
        if mode == CUSTOM and isinstance(params, dict) and params:
            self._request(Settings(CUSTOM, params, inputs, weights, multihead, multihead_source))
        else:
            self.use_book()

    def _request(self, settings: Settings) -> None:
        self.model.request(settings)
        self._submit(settings)

    def _validate(self, params: dict) -> bool:
        """Validate here when core is already loaded (instant feedback); else the worker does."""
        if "core.config" not in sys.modules:
            return True
        from core.config import AttentionConfig, ConfigError
        try:
            AttentionConfig(**params)
        except ConfigError as exc:
            self.error.emit(exc.field, exc.message)
            return False
        except TypeError as exc:      # an unknown field name
            self.error.emit("", str(exc))
            return False
        return True

    def _submit(self, settings: Settings) -> None:
        """Compute ``settings``' traces, the step on screen's stages first (gui.scheduler)."""
        self._last_id += 1
        req = Request.for_settings(settings, self.model.step, self.model.batch_index)
        req.id = self._last_id
        self._set_busy(True)
        self._worker.submit(req)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy.emit(busy)

    def _on_done(self, result: Result) -> None:
        if result.sections:
            self.sections = result.sections
            self.model.set_section_titles(result.section_titles)
        self.cuda_available = result.cuda_available
        if result.id != self._last_id:
            return                          # a newer request is on its way: the latest wins
        if result.partial:                  # its first part (gui.scheduler): the rest follows
            self._install(result.mode, result.traces, result.settings)
            return
        self._set_busy(False)
        m = self.model
        if result.error is not None:
            field, message = result.error
            m.drop_partial()
            if edit_refused(field):         # a refused edit: the edits on screen stay
                m.request(m.requested.with_edits_from(m.applied))
            self.error.emit(field, message)
            if not m.has_trace and result.mode == CUSTOM:
                self.use_book()             # restored settings failed: show the book instead
            return
        if result.mode == "book":
            self._book_traces = result.traces
        self.error_cleared.emit()
        for note in result.notes:
            self.notice.emit(note)
        self._install(result.mode, result.traces, result.settings)
        self.trace_changed.emit()

    def _install(self, mode: str, traces: dict, settings: Settings | None) -> None:
        self.model.set_traces(mode, traces, settings)
        self._show_config()

    def shutdown(self) -> None:
        """Stop the worker thread (call before the application quits)."""
        self._worker.stop()
        self.pretrained.shutdown()
        self._gc.stop()
