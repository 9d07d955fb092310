"""The trace worker's work: computes traces off the UI thread so the UI never waits for torch.

``trace_runner()`` is a gui.tasks.TaskRunner: ``submit`` replaces any request not yet started
(the latest wins); results come back through its ``partial`` and ``done`` signals, queued to
the UI thread. What a request computes first is gui.scheduler's (``Request.for_settings``), and
so is whether a result is the whole of it (``Result.partial``). ``core`` (and torch) is
imported here, lazily, on the first request. Every failure becomes ``Result.error = (field,
message)``: the app never shows a traceback.
"""
from __future__ import annotations

import dataclasses
import functools
import traceback
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Request:
    id: int
    mode: str                   # "book" (every chapter section) or "custom"
    params: dict | None         # AttentionConfig fields for "custom"
    first: str | None = None    # book: the section to compute (and deliver) first
    inputs: object = None       # custom: edited embeddings (core.inputs.Inputs) or None
    weights: dict | None = None  # custom: edited W_query/W_key/W_value (d_in × d_out arrays)
    multihead: dict | None = None  # custom: stage 4's own five weights (a trained layer's), or None
    stages: tuple[str, ...] = ()  # custom: the stages on screen, computed (and delivered) first
    panels: tuple = ()          # custom: the step on screen's panels (gui.steps.Panel), prepared here
    batch_index: int = 0        # ... for this batch item
    settings: object = None     # the gui.settings.Settings it was built from (handed back in the Result)

    @classmethod
    def for_settings(cls, settings, step, batch_index: int = 0) -> "Request":
        """The request for ``settings`` (gui.settings.Settings) with ``step`` on screen: what the
        step reads is computed and delivered first (gui.scheduler)."""
        from gui import scheduler
        if settings.mode == "book":
            return cls(0, "book", None, first=scheduler.first_section(step), settings=settings)
        return cls(0, "custom", dict(settings.params or {}), inputs=settings.inputs,
                   weights=dict(settings.weights) or None, multihead=dict(settings.multihead) or None,
                   stages=scheduler.first_stages(step), panels=tuple(step.panels),
                   batch_index=batch_index, settings=settings)


@dataclass
class Result:
    id: int
    mode: str
    traces: dict = field(default_factory=dict)      # section or "custom" -> Trace
    error: tuple[str, str] | None = None            # (field, message)
    sections: dict = field(default_factory=dict)    # book section -> config dict
    section_titles: dict = field(default_factory=dict)  # book section -> where in the chapter
    notes: tuple[str, ...] = ()
    cuda_available: bool = False
    settings: object = None                         # the request's gui.settings.Settings

    @property
    def partial(self) -> bool:
        """Whether more traces of this request follow (gui.scheduler: they lack a stage or a
        book section the chapter's steps read)."""
        from gui.scheduler import chapter_schedule
        return self.error is None and not chapter_schedule().complete(self.mode, self.traces)


def compute(req: Request, partial: Callable[[Result], None] | None = None,
            cancelled: Callable[[], bool] = lambda: False) -> Result:
    """Build the trace(s) a request asks for (runs on the worker thread).

    In book mode the ``req.first`` section is delivered first through ``partial`` (the first
    heatmap appears without waiting for the other sections); in custom mode the stages in
    ``req.stages`` (the step on screen) are, as a trace holding only those. ``cancelled()`` is
    polled between sections (and after the custom partial) so a newer request does not wait
    for a stale one; a cancelled custom result holds only the partial trace.
    """
    try:
        from core.book import BOOK_SECTIONS
        from core.config import AttentionConfig, ConfigError
        from core.device import cuda_available
        from core.memory import MemoryBudgetError, check_memory
        from core.trace import build_trace, build_trace_in_steps
    except Exception as exc:  # a broken torch install: say so, do not crash
        return Result(req.id, req.mode, error=("", f"cannot load the attention core: {exc}"), settings=req.settings)
    sections, titles = _book_sections()
    out = Result(req.id, req.mode, sections=sections, section_titles=titles,
                 cuda_available=cuda_available(), settings=req.settings)
    try:
        if req.mode == "book":
            order = sorted(BOOK_SECTIONS, key=lambda k: k != req.first)     # the first section first
            for key in order:
                if cancelled():
                    break
                out.traces[key] = build_trace(BOOK_SECTIONS[key][1])
                if key == req.first and partial is not None and len(order) > 1:
                    partial(dataclasses.replace(out, traces=dict(out.traces)))
        else:
            cfg = AttentionConfig(**(req.params or {}))
            tokens = None
            if req.inputs is not None:          # edited embeddings: their token count, not the text's
                from core.config import MAX_TOKENS
                tokens = len(req.inputs.tokens)
                if tokens > MAX_TOKENS:
                    raise ConfigError("embeddings", f"the inputs have {tokens} tokens; the limit is {MAX_TOKENS}")
                if tokens == 0:
                    raise ConfigError("embeddings", "the inputs need at least one token")
            check_memory(cfg, tokens)
            prepared = False
            # the stages on screen first (delivered through ``partial``), then the rest; a newer
            # request stops it between the two (the partial trace is then never completed)
            for trace in build_trace_in_steps(cfg, inputs=req.inputs, first=req.stages,
                                              weights_override=req.weights or None,
                                              multihead_override=req.multihead or None):
                out.traces = {"custom": trace}
                if req.panels and not prepared:     # once: the full trace holds the partial's intermediates
                    _prepare_panels(trace, req.panels, req.batch_index)
                    prepared = True
                part = dataclasses.replace(out, traces=dict(out.traces))
                if part.partial:                    # the visible stage: the rest follows
                    if partial is not None:
                        partial(part)
                    if cancelled():
                        break
        out.notes = tuple(dict.fromkeys(n for t in out.traces.values() for n in t.notes))
    except ConfigError as exc:
        out.error = (exc.field, exc.message)
    except MemoryBudgetError as exc:
        out.error = ("", str(exc))
    except TypeError as exc:
        out.error = ("", f"invalid settings: {exc}")
    except MemoryError:
        out.error = ("", "out of memory while computing the trace; reduce the tokens, batch or heads")
    except Exception as exc:  # torch.OutOfMemoryError and anything unexpected
        name = type(exc).__name__
        if "OutOfMemory" in name:
            out.error = ("", "the GPU ran out of memory; reduce the tokens, batch or heads, or use the CPU")
        elif isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc):
            # torch's CPU allocator raises RuntimeError ("DefaultCPUAllocator: can't allocate memory")
            out.error = ("", "out of memory while computing the trace; reduce the tokens, batch or heads")
        else:
            traceback.print_exc()
            out.error = ("", f"could not compute the trace ({name}: {exc})")
    if out.error:
        out.traces = {}
    return out


@functools.lru_cache(maxsize=1)
def _sections() -> tuple[dict, dict]:
    from core.book import BOOK_SECTIONS
    return ({key: cfg.to_dict() for key, (_desc, cfg) in BOOK_SECTIONS.items()},
            {key: desc for key, (desc, _cfg) in BOOK_SECTIONS.items()})


def _book_sections() -> tuple[dict, dict]:
    """Every chapter section's config (as a dict) and title: built once (``to_dict`` of all seven
    was ~0.7 ms of every request), handed out as copies."""
    sections, titles = _sections()
    return {key: dict(cfg) for key, cfg in sections.items()}, dict(titles)


def _prepare_panels(trace, panels, batch_index: int) -> None:
    """What the window computes when it draws the step on screen, done here once: the maps'
    colour ranges, their images (small maps) and the undefined-value notes (kept in the
    display cache), not on the UI thread between the result's arrival and its paint."""
    from gui.display_cache import DISPLAY
    from gui.heatmap import prerender
    from gui.matrices import warm
    for data in warm(trace, panels, batch_index):
        try:
            prerender(data)             # the maps' images, looked up in their colour tables
        except Exception:               # the window makes them itself then
            pass
    for panel in panels:
        if panel.key in trace:
            DISPLAY.notes(trace[panel.key])


def compute_task(req: Request, task) -> Result:
    """The trace runner's work (gui.tasks.TaskRunner): partial results go out as they come, a
    newer request cancels the one computing between its sections."""
    return compute(req, partial=task.partial, cancelled=task.cancelled)


def trace_runner():
    """The trace worker: one long-lived thread at a lower priority; the latest Request wins."""
    from gui.tasks import TaskRunner
    return TaskRunner(compute_task, "TraceWorker", low_priority=True)
