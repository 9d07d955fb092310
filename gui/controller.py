"""The controller: one QObject that owns the config, the traces and the current step.

Views take the controller in their constructor and connect to its signals. Parameter changes
are validated (a ConfigError becomes ``error(field, message)`` and the last good trace stays),
then computed off the UI thread by :class:`gui.worker.TraceWorker` (the latest request wins).
``core`` (and so torch) is imported lazily: in the worker on the first compute, and here only
once the worker has loaded it, so the window appears before torch is imported.

Two modes: "book" shows every step from its chapter section's config (core.book), so each
step prints the chapter's numbers; "custom" shows every step from one config.
"""
from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

from gui.steps import Step, load_steps
from gui.worker import Request, Result, TraceWorker

BOOK_TEXT = "Your journey starts with one step"   # core.config.BOOK_TEXT (a test checks they agree)
CUSTOM = "custom"
INPUT_FIELDS = ("embeddings", "text", "d_in")     # a change drops edited embeddings
WEIGHT_FIELDS = ("d_in", "d_out", "init", "seed")          # a change drops edited weights
EDIT_FIELDS = ("embeddings", "W_query", "W_key", "W_value")  # errors an edit can cause


class Controller(QObject):
    trace_changed = Signal()            # new traces are in place (redraw the current step)
    step_changed = Signal(int)          # index into steps
    config_changed = Signal(dict)       # the config the parameter panel should show
    mode_changed = Signal(str)          # "book" or "custom"
    error = Signal(str, str)            # (field, message); field "" = not tied to a control
    error_cleared = Signal()
    busy = Signal(bool)
    notice = Signal(str)                # informational status-bar message (e.g. CUDA fallback)

    def __init__(self, parent: QObject | None = None, worker: TraceWorker | None = None):
        super().__init__(parent)
        self.steps: tuple[Step, ...] = load_steps()
        self.index = 0
        self.mode = "book"
        self.params: dict | None = None           # attempted custom config (may be invalid)
        self.inputs = None                        # edited embeddings (core.inputs.Inputs), custom only
        self.weights: dict = {}                   # edited W_query/W_key/W_value, custom only
        self.applied_edits: tuple = (None, {})    # (inputs, weights) behind the trace on screen
        self._requested_edits: tuple = (None, {})
        self.sections: dict[str, dict] = {}       # book section -> config dict (from the worker)
        self.section_titles: dict[str, str] = {}  # book section -> where in the chapter
        self.cuda_available = False
        self._traces: dict[str, object] = {}      # section (or CUSTOM) -> Trace
        self._traces_mode: str | None = None
        self._book_traces: dict[str, object] = {}
        self._last_id = 0
        self._busy = False
        from gui.gc_guard import MainThreadGC
        self._gc = MainThreadGC(self)             # GC on this thread only (a GC on the worker could deadlock)
        self._worker = worker or TraceWorker()
        self._worker.done.connect(self._on_done)
        self._worker.start()

    # ---- state -----------------------------------------------------------------------
    @property
    def step(self) -> Step:
        return self.steps[self.index]

    @property
    def has_trace(self) -> bool:
        return bool(self._traces)

    def trace_for(self, step: Step | None = None):
        """The trace the given (default: current) step is drawn from, or None before the first."""
        step = step or self.step
        if not self._traces:
            return None
        if self._traces_mode == "book":
            return self._traces.get(step.section)
        return self._traces.get(CUSTOM)

    @property
    def trace(self):
        return self.trace_for()

    @property
    def traces_mode(self) -> str | None:
        """The mode of the traces on screen ("book"/"custom"; None before the first)."""
        return self._traces_mode

    def shown_config(self) -> dict:
        """The config behind the current step (what the parameter panel shows)."""
        if self.mode == CUSTOM and self.params is not None:
            return dict(self.params)
        return dict(self.sections.get(self.step.section, {}))

    def section_title(self, section: str) -> str:
        return self.section_titles.get(section, section)

    def is_busy(self) -> bool:
        return self._busy

    # ---- navigation --------------------------------------------------------------------
    def go(self, index: int) -> None:
        index = max(0, min(int(index), len(self.steps) - 1))
        if index == self.index:
            return
        old_section = self.step.section
        self.index = index
        self.step_changed.emit(index)
        if self.mode == "book" and self.step.section != old_section and self.sections:
            self.config_changed.emit(self.shown_config())

    def next(self) -> None:
        self.go(self.index + 1)

    def back(self) -> None:
        self.go(self.index - 1)

    def first(self) -> None:
        self.go(0)

    def last(self) -> None:
        self.go(len(self.steps) - 1)

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
        self.params = params
        if self.mode != CUSTOM:
            self.mode = CUSTOM
            self.mode_changed.emit(CUSTOM)
        if not self._validate(params):
            self._last_id += 1            # a result still in flight is for older settings: drop it
            self._set_busy(False)
            return
        self._submit(self._custom_request(params))

    def _custom_request(self, params: dict) -> Request:
        self._requested_edits = (self.inputs, dict(self.weights))
        return Request(0, CUSTOM, dict(params), inputs=self.inputs, weights=dict(self.weights) or None)

    def set_edits(self, inputs=None, weights: dict | None = None) -> None:
        """Recompute the shown config with edited embeddings and/or W_query/W_key/W_value.

        Leaves the Book preset like a parameter change; ``inputs`` None keeps the current
        edits, weights are merged in. A bad edit becomes ``error`` and the last trace stays.
        """
        base = self.shown_config() or dict(self.params or {})
        if self.mode != CUSTOM:
            self.mode = CUSTOM
            self.mode_changed.emit(CUSTOM)
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
        if self.mode == CUSTOM and self.params is not None:
            self._submit(self._custom_request(self.params))

    def set_param(self, field: str, value) -> None:
        self.set_params(**{field: value})

    def use_book(self) -> None:
        """The Book preset: every step from its chapter section's config."""
        self.mode = "book"
        self.params = None
        self.inputs = None
        self.weights = {}
        self.mode_changed.emit("book")
        self.error_cleared.emit()
        if self._book_traces:
            self._last_id += 1           # drop any custom result still in flight
            self._set_busy(False)
            self._install("book", self._book_traces)
            return
        self._submit(Request(0, "book", None, first=self.step.section))

    def restore(self, mode: str, params: dict | None, inputs=None, weights: dict | None = None) -> None:
        """Start from saved settings (QSettings, a lesson); falls back to the book if they fail."""
        if mode == CUSTOM and isinstance(params, dict) and params:
            self.mode = CUSTOM
            self.params = dict(params)
            self.inputs = inputs
            self.weights = dict(weights or {})
            self.mode_changed.emit(CUSTOM)
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
            self.section_titles = result.section_titles
        self.cuda_available = result.cuda_available
        if result.id != self._last_id:
            return                          # a newer request is on its way: the latest wins
        if result.partial:                  # the current step's section, the rest follows
            self._install(result.mode, result.traces)
            return
        self._set_busy(False)
        if result.error is not None:
            field, message = result.error
            if field in EDIT_FIELDS or not field:   # a refused edit: keep the edits behind the trace
                self.inputs, self.weights = self.applied_edits[0], dict(self.applied_edits[1])
            self.error.emit(field, message)
            if not self._traces and result.mode == CUSTOM:
                self.use_book()             # restored settings failed: show the book instead
            return
        if result.mode == "book":
            self._book_traces = result.traces
        if result.mode == CUSTOM:
            self.applied_edits = self._requested_edits
        self.error_cleared.emit()
        for note in result.notes:
            self.notice.emit(note)
        self._install(result.mode, result.traces)

    def _install(self, mode: str, traces: dict) -> None:
        if mode == "book":
            self.applied_edits = (None, {})       # the book's traces carry no edits
        self._traces = traces
        self._traces_mode = mode
        self.trace_changed.emit()
        self.config_changed.emit(self.shown_config())

    def shutdown(self) -> None:
        """Stop the worker thread (call before the application quits)."""
        self._worker.stop()
        self._gc.stop()
