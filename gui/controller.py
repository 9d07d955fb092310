"""The controller: the Qt side of the window's state, which computes traces for the view model.

It owns the :class:`gui.view_model.ViewModel` (``controller.model``: step, trace, config, focus,
head, batch item — what every view observes) and everything that needs Qt or a thread:
parameter changes are validated (a ConfigError becomes ``error(field, message)`` and the last
good trace stays), then computed off the UI thread by :func:`gui.worker.trace_runner` (the
latest request wins); results go into the model. The model's main events are re-emitted as Qt
signals (``trace_changed``, ``step_changed``, ``config_changed``, ``mode_changed``) for code
that waits on them. ``core`` (and so torch) is imported lazily: in the worker on the first
compute, and here only once the worker has loaded it, so the window appears before torch is.

Two modes: "book" shows every step from its chapter section's config (core.book), so each
step prints the chapter's numbers; "custom" shows every step from one config.
"""
from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

from gui.steps import Step
from gui.view_model import CUSTOM, ViewModel
from gui.worker import Request, Result, trace_runner

BOOK_TEXT = "Your journey starts with one step"   # core.config.BOOK_TEXT (a test checks they agree)
INPUT_FIELDS = ("embeddings", "text", "d_in")     # a change drops edited embeddings
WEIGHT_FIELDS = ("d_in", "d_out", "init", "seed")          # a change drops edited weights
EDIT_FIELDS = ("embeddings", "W_query", "W_key", "W_value")  # errors an edit can cause
MULTIHEAD_FIELDS = ("d_in", "d_out", "num_heads", "qkv_bias")  # a change drops stage 4's trained weights


class Controller(QObject):
    trace_changed = Signal()            # a request's traces are complete and in place (the model's
                                        # trace_changed also fires for the partial one drawn first)
    step_changed = Signal(int)          # model.step_changed: index into steps
    config_changed = Signal(object)     # model.config_changed: the AttentionConfig the panel shows
    mode_changed = Signal(str)          # model.mode_changed: "book" or "custom"
    error = Signal(str, str)            # (field, message); field "" = not tied to a control
    error_cleared = Signal()
    busy = Signal(bool)
    notice = Signal(str)                # informational status-bar message (e.g. CUDA fallback)

    def __init__(self, parent: QObject | None = None, worker=None):
        super().__init__(parent)
        self.model = ViewModel()
        self.params: dict | None = None           # attempted custom config (may be invalid)
        self.inputs = None                        # edited embeddings (core.inputs.Inputs), custom only
        self.weights: dict = {}                   # edited W_query/W_key/W_value, custom only
        self.applied_edits: tuple = (None, {})    # (inputs, weights) behind the trace on screen
        self.multihead: dict = {}                 # stage 4's own weights (a trained snapshot's), custom only
        self.multihead_source = None              # where they come from (core.train.stepper.StepperSource)
        self.applied_multihead: tuple = ({}, None)  # (multihead, source) behind the trace on screen
        self._requested_multihead: tuple = ({}, None)
        self._requested_edits: tuple = (None, {})
        self.sections: dict[str, dict] = {}       # book section -> config dict (from the worker)
        self.cuda_available = False
        self._shown_section = self.model.step.section   # the section whose config the model holds
        self._book_traces: dict[str, object] = {}
        self._last_id = 0
        self._busy = False
        # what the window showed when a request's visible stage (a partial trace) was drawn: its
        # last complete traces and the edits they carry, put back if the rest never comes
        self._complete: tuple | None = None       # (mode, traces, applied_edits, applied_multihead)
        self._partial_shown = False
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
        if self.mode == CUSTOM and self.params is not None:
            return dict(self.params)
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

    # ---- parameters ----------------------------------------------------------------------
    def set_params(self, **changes) -> None:
        """Change config fields; leaves the Book preset (a custom config from the shown one)."""
        base = self.shown_config()
        if not base:                 # nothing computed yet: the worker will apply them later
            base = dict(self.params or {})
        params = {**base, **changes}
        if self.mode != CUSTOM or any(params.get(f) != base.get(f) for f in INPUT_FIELDS):
            self.inputs = None                    # new embeddings source: edits no longer apply
        if self.mode != CUSTOM or any(params.get(f) != base.get(f) for f in WEIGHT_FIELDS):
            self.weights = {}
        if self.mode != CUSTOM or any(params.get(f) != base.get(f) for f in MULTIHEAD_FIELDS):
            self.multihead, self.multihead_source = {}, None   # the trained layer no longer fits
        self.params = params
        if self.mode != CUSTOM:
            self.model.set_mode(CUSTOM)
        if not self._validate(params):
            self._last_id += 1            # a result still in flight is for older settings: drop it
            self._set_busy(False)
            self._drop_partial()
            return
        self._submit(self._custom_request(params))

    def _custom_request(self, params: dict) -> Request:
        self._requested_edits = (self.inputs, dict(self.weights))
        self._requested_multihead = (dict(self.multihead), self.multihead_source)
        from gui.view_model import step_stages
        return Request(0, CUSTOM, dict(params), inputs=self.inputs, weights=dict(self.weights) or None,
                       multihead=dict(self.multihead) or None,
                       stages=step_stages(self.model.step),    # the step on screen first
                       panels=tuple(self.model.step.panels), batch_index=self.model.batch_index)

    def set_edits(self, inputs=None, weights: dict | None = None) -> None:
        """Recompute the shown config with edited embeddings and/or W_query/W_key/W_value.

        Leaves the Book preset like a parameter change; ``inputs`` None keeps the current
        edits, weights are merged in. A bad edit becomes ``error`` and the last trace stays.
        """
        base = self.shown_config() or dict(self.params or {})
        if self.mode != CUSTOM:
            self.model.set_mode(CUSTOM)
        self.params = base
        if inputs is not None:
            self.inputs = inputs
        if weights:
            self.weights = {**self.weights, **weights}
        self._submit(self._custom_request(base))

    def reset_edits(self) -> None:
        """Drop edited embeddings and weights (back to the config's preset)."""
        self.inputs = None
        self.weights = {}
        self.multihead, self.multihead_source = {}, None
        if self.mode == CUSTOM and self.params is not None:
            self._submit(self._custom_request(self.params))

    def set_param(self, field: str, value) -> None:
        self.set_params(**{field: value})

    def use_book(self) -> None:
        """The Book preset: every step from its chapter section's config."""
        self.model.set_mode("book")
        self.params = None
        self.inputs = None
        self.weights = {}
        self.multihead, self.multihead_source = {}, None
        self.error_cleared.emit()
        if self._book_traces:
            self._last_id += 1           # drop any custom result still in flight
            self._set_busy(False)
            self._install("book", self._book_traces)
            return
        self._submit(Request(0, "book", None, first=self.step.section))

    def restore(self, mode: str, params: dict | None, inputs=None, weights: dict | None = None,
                multihead: dict | None = None, multihead_source=None) -> None:
        """Start from saved settings (QSettings, a lesson, a training snapshot); falls back to the
        book if they fail. ``multihead``: stage 4's own W_query, W_key, W_value, W_out, b_out."""
        if mode == CUSTOM and isinstance(params, dict) and params:
            self.params = dict(params)
            self.inputs = inputs
            self.weights = dict(weights or {})
            self.multihead = dict(multihead or {})
            self.multihead_source = multihead_source if self.multihead else None
            self.model.set_mode(CUSTOM)
            self._submit(self._custom_request(self.params))
        else:
            self.use_book()

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

    def _submit(self, req: Request) -> None:
        self._last_id += 1
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
        if result.partial:                  # the current step's section (or stages), the rest follows
            if result.mode == CUSTOM:
                self.applied_edits = self._requested_edits
            self._install(result.mode, result.traces, complete=False)
            return
        self._set_busy(False)
        if result.error is not None:
            field, message = result.error
            self._drop_partial()
            if field in EDIT_FIELDS or not field or field.startswith("multihead."):   # a refused edit: keep the last
                self.inputs, self.weights = self.applied_edits[0], dict(self.applied_edits[1])
                self.multihead, self.multihead_source = dict(self.applied_multihead[0]), self.applied_multihead[1]
            self.error.emit(field, message)
            if not self.model.has_trace and result.mode == CUSTOM:
                self.use_book()             # restored settings failed: show the book instead
            return
        if result.mode == "book":
            self._book_traces = result.traces
        if result.mode == CUSTOM:
            self.applied_edits = self._requested_edits
            self.applied_multihead = self._requested_multihead
        self.error_cleared.emit()
        for note in result.notes:
            self.notice.emit(note)
        self._install(result.mode, result.traces)

    def _install(self, mode: str, traces: dict, complete: bool = True) -> None:
        if mode == "book":
            self.applied_edits = (None, {})       # the book's traces carry no edits
            self.applied_multihead = ({}, None)
        self.model.set_traces(mode, traces, weights=self.applied_edits[1], partial=not complete)
        self._show_config()
        self._partial_shown = not complete
        if complete:
            self._complete = (mode, traces, self.applied_edits, self.applied_multihead)
            self.trace_changed.emit()

    def _drop_partial(self) -> None:
        """The request whose visible stage is on screen will not complete (a refused change came
        after it, or it failed): show the last complete traces again, not a partial one for good
        (its other stages' steps would say "Computing…" for ever)."""
        if not self._partial_shown or self._complete is None:
            return
        mode, traces, self.applied_edits, self.applied_multihead = self._complete
        self._partial_shown = False
        self.model.set_traces(mode, traces, weights=self.applied_edits[1])

    def shutdown(self) -> None:
        """Stop the worker thread (call before the application quits)."""
        self._worker.stop()
        self.pretrained.shutdown()
        self._gc.stop()
