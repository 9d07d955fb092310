"""The window's state, Qt-free: which settings, step, trace, matrix, head and batch item are on screen.

Views take a :class:`ViewModel` in their constructor, read its attributes and subscribe to its
events (``model.step_changed.connect(view.refresh)``); they change what is shown through its
methods (``model.go(3)``, ``model.set_head(1)``) and never read each other's widgets. As in
napari's layer models, the state is plain Python with small observer lists (:class:`Event`)
instead of Qt signals, so it runs and is tested without a QApplication; the Qt-facing
:class:`gui.controller.Controller` owns one, fills it with traces from its worker and
re-emits the events as Qt signals for code that waits on them (``qtbot.waitSignal``).

Settings are two frozen :class:`gui.settings.Settings`: ``requested`` (what the learner asked
for last, even if refused) and ``applied`` (what the traces on screen were computed from); a
refused edit puts ``requested``'s edits back to ``applied``'s (the controller decides, the model
holds). Visible stage first (gui.scheduler): a change's traces may arrive in two parts, the
stages the step on screen reads first. ``ready_stages`` says which stages of the traces on screen
every chapter step can be drawn from; ``stages_ready`` announces them after each arrival, and
views ask ``ready(stages)`` before drawing what they read. ``ready()`` (no stages) is the side
panes' rule: False while the first part of a change is on screen and the learner has not moved,
so the maps paint first and the explanation and code follow with the rest.

Every setter first brings *all* state up to date — the matrices the step shows (:attr:`shown`,
resolved from the trace with the head and batch item applied), the clamped head, batch item and
focus — and only then emits, so no listener depends on another having run first.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from gui.matrices import MatrixData, resolve_panel, share_levels
from gui.scheduler import Schedule, is_chapter, step_stages, step_trace  # noqa: F401 (step_stages re-exported)
from gui.settings import CUSTOM, Settings
from gui.steps import Step, load_steps


class Event:
    """An observer list: ``connect(callback)``, ``disconnect(callback)``, ``emit(*args)``."""

    def __init__(self, name: str):
        self.name = name
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> Callable:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        for callback in list(self._callbacks):     # a callback may connect or disconnect others
            callback(*args)

    def __len__(self) -> int:
        return len(self._callbacks)


@dataclass(frozen=True)
class Mark:
    """Cells of one intermediate to frame: ``rows``/``cols`` None = every row/column.

    ``role`` is "source" (a cell that feeds the clicked one) or "clicked".
    """

    stage: str
    name: str
    lead: tuple[int, ...]                 # batch/head indices of the map
    rows: tuple[int, ...] | None
    cols: tuple[int, ...] | None
    role: str = "source"


@dataclass(frozen=True)
class Frame:
    """One rectangle a heatmap panel draws: map ``map_index``, cells [x, x+w) × [y, y+h)."""

    map_index: int
    x: int
    y: int
    w: int
    h: int
    role: str
    key: tuple[str, str]
    lead: tuple[int, ...]


def frames_for(marks: tuple[Mark, ...], data: MatrixData) -> list[Frame]:
    """The rectangles ``marks`` put on the panel that shows ``data`` (difference panels: none)."""
    out: list[Frame] = []
    if data.extra.get("max_abs_diff") is not None:
        return out
    for mark in marks:
        if data.key != (mark.stage, mark.name):
            continue
        for k, m in enumerate(data.maps):
            if tuple(m.index) != tuple(mark.lead):
                continue
            nrows, ncols = m.values.shape
            col_spans = [(c, 1) for c in mark.cols] if mark.cols is not None else [(0, ncols)]
            if mark.rows is None:
                row_spans = [(0, nrows)]
            else:                          # rows are the intermediate's; a row slice starts at row_offset
                row_spans = [(r - data.row_offset, 1) for r in mark.rows if 0 <= r - data.row_offset < nrows]
            for r0, rh in row_spans:
                for c0, cw in col_spans:
                    if c0 < ncols:
                        out.append(Frame(k, c0, r0, cw, rh, mark.role, data.key, tuple(mark.lead)))
    return out


def _only_head(data: MatrixData, head: int) -> MatrixData:
    maps = [m for m in data.maps if m.head == head]
    return dataclasses.replace(data, maps=maps) if maps else data


class ViewModel:
    """What the window shows. Attributes are read-only for views; change them with the methods.

    State: ``steps``, ``index`` (``step``), ``requested`` and ``applied`` (gui.settings.Settings;
    ``mode`` is the preset asked for: "book"/"custom"), ``traces_mode`` (the one on screen),
    ``trace`` (the current step's), ``ready_stages``, ``config`` (the frozen
    ``core.config.AttentionConfig`` the parameter panel shows), ``section_titles``, ``weights``
    (edited W_query/W_key/W_value behind the trace), ``head`` (None = all heads), ``batch_index``,
    ``focus`` ((matrix, map) under focus) and ``focus_picked`` (clicked since the step changed),
    ``hover`` (text of the cell under the mouse), ``marks`` (cells the inspector frames).
    Derived, recomputed before any event: ``shown`` (the matrices the step draws), ``num_heads``,
    ``batch_size``, ``batch_selectable``, ``draw_error``.
    """

    def __init__(self, steps: tuple[Step, ...] | None = None):
        self.steps: tuple[Step, ...] = steps if steps is not None else load_steps()
        self.index = 0
        self.requested = Settings.BOOK           # what the learner asked for last (may be refused)
        self.applied = Settings.BOOK             # what the traces on screen were computed from
        self.traces_mode: str | None = None
        self.traces: dict = {}                 # section (or CUSTOM) -> Trace
        self._schedule = Schedule(self.steps)
        self.ready_stages: frozenset[str] = frozenset()   # of the traces on screen (gui.scheduler)
        self._rest_pending = False             # their first part is on screen, the learner has not moved
        self._complete: tuple | None = None    # (mode, traces, applied): the last complete traces shown
        self.config = None                     # core.config.AttentionConfig | None
        self.section_titles: dict[str, str] = {}
        self.head: int | None = None
        self.batch_index = 0
        self.focus: tuple[int, int] = (0, 0)
        self.focus_picked = False
        self.hover = ""
        self.marks: tuple[Mark, ...] = ()
        self.shown: tuple[MatrixData, ...] = ()
        self.num_heads = 0
        self.batch_size = 1
        self.batch_selectable = False
        self.draw_error: str | None = None
        # stage 5 (pretrained): its own trace (core.pretrained.PretrainedTrace, all heads of one
        # layer), the head gallery (core.pretrained.Gallery) and what the loading is doing
        self.pretrained = None
        self.pretrained_gallery = None
        self.pretrained_status = "Loading the model…"
        # stages 6–8 (decode, tiled attention, RoPE): one generic state each (gui.external_model):
        # the whole trace, the bar's pointer, the view at it (what the steps draw), the status
        from gui.external_model import STAGES as _EXTERNAL, ExternalState
        self.external = {s: ExternalState(s) for s in _EXTERNAL}

        self.step_changed = Event("step_changed")        # (index)
        self.trace_changed = Event("trace_changed")      # ()  new traces in place
        self.stages_ready = Event("stages_ready")        # (ready_stages)  after each arrival of traces
        self.settings_changed = Event("settings_changed")  # ()  requested or applied changed
        self.config_changed = Event("config_changed")    # (AttentionConfig)
        self.mode_changed = Event("mode_changed")        # (mode)
        self.shown_changed = Event("shown_changed")      # ()  shown/num_heads/batch_* recomputed
        self.head_changed = Event("head_changed")        # (head or None)
        self.batch_changed = Event("batch_changed")      # (batch_index)
        self.focus_changed = Event("focus_changed")      # ()  a matrix was picked
        self.hover_changed = Event("hover_changed")      # (text)
        self.marks_changed = Event("marks_changed")      # ()
        self.cell_clicked = Event("cell_clicked")        # (MatrixData, map index, row, column)
        self.pretrained_changed = Event("pretrained_changed")  # ()  stage 5's trace, gallery or status
        self.external_changed = Event("external_changed")  # (stage)  stage 6/7/8's trace, pointer or status

    # ---- read ------------------------------------------------------------------------------
    @property
    def step(self) -> Step:
        return self.steps[self.index]

    @property
    def has_trace(self) -> bool:
        return bool(self.traces)

    @property
    def mode(self) -> str:
        """The preset asked for ("book"/"custom"): ``requested.mode``."""
        return self.requested.mode

    @property
    def weights(self):
        """The edited W_query/W_key/W_value behind the traces on screen (a read-only mapping)."""
        return self.applied.weights

    def ready(self, stages: str | tuple[str, ...] | None = None) -> bool:
        """Whether the traces on screen hold ``stages`` (a name or names) for every chapter step
        that reads them. With no ``stages``: whether the views beside the maps may draw now —
        False only while a change's first part is on screen on a chapter step and the learner
        has not moved since (the rest follows; the maps paint first)."""
        if stages is None:
            return not (self._rest_pending and self.is_chapter(self.step))
        return {stages} <= self.ready_stages if isinstance(stages, str) else set(stages) <= self.ready_stages

    @property
    def inputs(self):
        """The token embeddings the traces on screen were computed from (every trace, partial or
        not, holds them); None before the first trace."""
        trace = self.chapter_trace() or next(iter(self.traces.values()), None)   # never stage 5's model
        return trace.inputs if trace is not None else None

    def trace_for(self, step: Step | None = None):
        """The trace ``step`` (default: the current one) is drawn from; None before the first."""
        step = step or self.step
        if step.stage == "pretrained":           # the real model's trace (None while it loads)
            return self.pretrained
        if step.stage in self.external:          # stages 6–8 at the bar's pointer (None while computing)
            return self.external[step.stage].view
        return step_trace(self.traces_mode, self.traces, step)   # None: its stages are computing

    @property
    def trace(self):
        return self.trace_for()

    def section_title(self, section: str) -> str:
        return self.section_titles.get(section, section)

    def focused(self) -> tuple[MatrixData, int] | None:
        """The matrix under focus and which of its maps (what File → Export matrix writes)."""
        if not self.shown:
            return None
        k, m = self.focus
        k = min(k, len(self.shown) - 1)
        return self.shown[k], min(m, len(self.shown[k].maps) - 1)

    # ---- change ----------------------------------------------------------------------------
    def go(self, index: int) -> None:
        """Show step ``index`` (clamped); the focus goes back to the first matrix, unpicked."""
        index = max(0, min(int(index), len(self.steps) - 1))
        if index == self.index:
            return
        self.index = index
        self.focus = (0, 0)
        self.focus_picked = False
        self._rest_pending = False             # the side panes draw the part there is
        clamped = self._resolve()
        self.step_changed.emit(index)
        self._emit_clamped(clamped)
        self.shown_changed.emit()
        self._clear_hover()

    def next(self) -> None:
        self.go(self.index + 1)

    def back(self) -> None:
        self.go(self.index - 1)

    def first(self) -> None:
        self.go(0)

    def last(self) -> None:
        self.go(len(self.steps) - 1)

    def set_traces(self, mode: str, traces: dict, applied: Settings | None = None) -> None:
        """New traces on screen ("book": section -> trace; "custom": {CUSTOM: trace}), computed
        from ``applied`` (default: the preset without edits). They may be a change's first part
        (gui.scheduler): ``ready_stages`` says which stages are in."""
        applied = applied if applied is not None else Settings.BOOK if mode == "book" else Settings(CUSTOM)
        self.traces = traces
        self.traces_mode = mode
        changed = applied is not self.applied
        self.applied = applied
        self.ready_stages = self._schedule.ready_stages(mode, traces)
        complete = self.ready_stages >= self._schedule.stages
        self._rest_pending = not complete
        if complete:
            self._complete = (mode, traces, applied)
        clamped = self._resolve()
        if changed:
            self.settings_changed.emit()
        self.trace_changed.emit()
        self._emit_clamped(clamped)
        self.shown_changed.emit()
        self.stages_ready.emit(self.ready_stages)
        self._clear_hover()

    def drop_partial(self) -> None:
        """The change whose first part is on screen will not complete (a refused change came
        after it, or it failed): show the last complete traces again, not a part of one for good
        (its other stages' steps would say "Computing…" for ever)."""
        if self.ready_stages >= self._schedule.stages or self._complete is None:
            return
        self.set_traces(*self._complete)

    def request(self, settings: Settings) -> None:
        """What the learner asks for now (it may yet be refused); ``mode_changed`` goes out when
        the preset changes, and for the Book preset always (its button re-checks itself)."""
        mode = self.requested.mode
        self.requested = settings
        self.settings_changed.emit()
        if settings.mode != mode or settings.mode == "book":
            self.mode_changed.emit(settings.mode)
            self._clear_hover()

    def chapter_step(self):
        """The current step, or the last chapter step while stage 5 (pretrained) is on screen."""
        step = self.step
        if not self.is_chapter(step):
            step = next((s for s in reversed(self.steps) if self.is_chapter(s)), step)
        return step

    def is_chapter(self, step) -> bool:
        """Whether ``step`` draws from the chapter's traces (not stage 5, 6, 7 or 8's own)."""
        return is_chapter(step)

    def external_status(self, stage: str) -> str | None:
        """What an external stage (6–8) is doing; None for any other stage."""
        state = self.external.get(stage)
        return state.status if state is not None else None

    def set_external(self, stage: str, trace=None, status: str | None = None) -> None:
        """Stage 6/7/8's new trace (None keeps the one shown; the pointer stays, clamped) and/or status."""
        state = self.external[stage]
        if trace is not None:
            state.set_trace(trace)
        if status is not None:
            state.status = status
        self._external_changed(stage, trace is not None)

    def set_external_pointer(self, stage: str, pointer: int) -> None:
        """The bar's pointer: which generated position (decode), tile (tiled) or position (rope) the steps show."""
        state = self.external[stage]
        if state.trace is None or int(pointer) == state.pointer:
            return
        state.at(pointer)
        self._external_changed(stage, True)

    def _external_changed(self, stage: str, new_numbers: bool) -> None:
        on_stage = self.step.stage == stage
        clamped = self._resolve() if new_numbers and on_stage else (False, False)
        self.external_changed.emit(stage)
        if new_numbers and on_stage:
            self.trace_changed.emit()
            self._emit_clamped(clamped)
        if on_stage:
            self.shown_changed.emit()
            self._clear_hover()

    def chapter_trace(self):
        """The chapter's trace for the current step, or for the last chapter step while stage 5
        (pretrained) is on screen: what views that compare the chapter's stages read."""
        step = self.chapter_step()
        return self.trace_for(step) if self.is_chapter(step) else None

    def set_pretrained(self, trace=None, gallery=None, status: str | None = None) -> None:
        """Stage 5's new trace and gallery (None keeps the one shown) and/or loading status."""
        if trace is not None:
            self.pretrained = trace
        if gallery is not None:
            self.pretrained_gallery = gallery
        if status is not None:
            self.pretrained_status = status
        on_stage = self.step.stage == "pretrained"
        clamped = self._resolve() if trace is not None and on_stage else (False, False)
        self.pretrained_changed.emit()
        if trace is not None and on_stage:
            self.trace_changed.emit()
            self._emit_clamped(clamped)
        if on_stage:
            self.shown_changed.emit()

    def set_config(self, config) -> None:
        """The config the parameter panel shows (a frozen AttentionConfig); always emits."""
        self.config = config
        self.config_changed.emit(config)
        self._clear_hover()

    def set_section_titles(self, titles: dict[str, str]) -> None:
        self.section_titles = dict(titles)

    def set_head(self, head: int | None) -> None:
        """One head in detail (0-based) or None for all heads side by side."""
        head = None if head is None or head < 0 else int(head)
        if head == self.head:
            return
        self.head = head
        self._rest_pending = False
        self._resolve()
        self.head_changed.emit(self.head)        # (None if the step has no such head)
        self.shown_changed.emit()
        self._clear_hover()

    def set_batch_index(self, batch_index: int) -> None:
        batch_index = max(0, int(batch_index))
        if batch_index == self.batch_index:
            return
        self.batch_index = batch_index
        self._rest_pending = False
        self._resolve()
        self.batch_changed.emit(self.batch_index)
        self.shown_changed.emit()
        self._clear_hover()

    def set_focus(self, matrix: int, map_index: int) -> None:
        """Pick matrix ``matrix`` (its map ``map_index``) as the one under focus."""
        self.focus = (int(matrix), int(map_index))
        self.focus_picked = True
        self.focus_changed.emit()

    def click(self, matrix: int, map_index: int, row: int, col: int) -> None:
        """A cell of a shown matrix was clicked: focus it, then tell the listeners (the inspector)."""
        self.set_focus(matrix, map_index)
        if matrix < len(self.shown):
            self.cell_clicked.emit(self.shown[matrix], map_index, row, col)

    def set_hover(self, text: str) -> None:
        self.hover = text
        self.hover_changed.emit(text)

    def _clear_hover(self) -> None:
        """The hovered cell belonged to what was on screen before: its text must not outlive it
        (a hover line naming a token the new input does not have)."""
        if self.hover:
            self.set_hover("")

    def set_marks(self, marks) -> None:
        marks = tuple(marks)
        if marks == self.marks:
            return
        self.marks = marks
        self.marks_changed.emit()

    # ---- derived state ---------------------------------------------------------------------
    def _emit_clamped(self, clamped: tuple[bool, bool]) -> None:
        if clamped[0]:
            self.head_changed.emit(self.head)
        if clamped[1]:
            self.batch_changed.emit(self.batch_index)

    def _resolve(self) -> tuple[bool, bool]:
        """Recompute ``shown`` and clamp head, batch item and focus to it; returns whether the
        head and the batch item had to change (a trace with fewer heads or batch items)."""
        head, batch = self.head, self.batch_index
        self._resolve_shown()
        return self.head != head, self.batch_index != batch

    def _resolve_shown(self) -> None:
        trace = self.trace
        self.draw_error = None
        if trace is None:                      # this step's trace is still being computed
            self.shown = ()
            self.draw_error = self.pretrained_status if self.step.stage == "pretrained" else \
                self.external_status(self.step.stage)
            return
        if not self.step.panels:               # a step drawn by its own view (stage 5's gallery): keep the head
            self.shown = ()
            return
        try:
            pairs = [(p, resolve_panel(p, trace, self.batch_index)) for p in self.step.panels]
            datas = share_levels([(p, d) for p, d in pairs if d])
        except Exception as exc:   # a step that cannot be drawn must not take the app down
            self.draw_error = str(exc)
            self.shown = ()
            return
        self.num_heads = max((m.head + 1 for d in datas for m in d.maps if m.head is not None), default=0)
        if self.head is not None and self.head >= self.num_heads:
            self.head = None
        b = getattr(trace.config, "batch", 1)    # stages 7, 8: one head, no batch
        self.batch_size = b
        self.batch_selectable = b > 1 and any(
            d.key[0] in ("causal", "multihead") and not any(m.title.startswith("batch") for m in d.maps)
            for d in datas)
        self.batch_index = min(self.batch_index, max(b - 1, 0))   # resolve_panel clamped it the same way
        from gui.external_model import LABELS  # decode: which K/V head each query head reads
        if self.step.stage in LABELS:
            LABELS[self.step.stage](datas, trace.config)
        if self.head is not None:
            datas = [_only_head(d, self.head) for d in datas]
        self.shown = tuple(datas)
        if self.focus[0] >= len(self.shown):
            self.focus = (0, 0)
