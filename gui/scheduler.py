"""Visible stage first, in one place: what a change computes first and which stages are ready.

A change is computed in two parts: first what the step on screen reads (a custom config: the
stages its panels read, through core.trace.build_trace_in_steps; the Book preset: its chapter
section), delivered and drawn at once, then the rest. This module is that policy and the only
place that knows it:

- :func:`first_stages` / :func:`first_section`: what a request computes first (the worker's
  ``Request.for_settings`` builds requests with them);
- :func:`step_trace`: the trace a step is drawn from, None while a stage it reads is computing
  (the step then says "Computing…");
- :meth:`Schedule.ready_stages`: which stages of a set of traces every chapter step can be drawn
  from (the view model's ``ready_stages``, ``ready(stages)`` and ``stages_ready`` event);
- :meth:`Schedule.complete`: whether nothing more of their request follows (``Result.partial``).

Views do not ask it: they ask the view model, which holds a :class:`Schedule` of its steps.
Qt-free and torch-free.
"""
from __future__ import annotations

from functools import lru_cache

from gui.external_model import STAGES as _EXTERNAL

CUSTOM = "custom"
OWN_TRACES = ("pretrained", *_EXTERNAL)    # stages 5–8: each draws from a trace of its own


def is_chapter(step) -> bool:
    """Whether ``step`` draws from the chapter's traces (not stage 5, 6, 7 or 8's own)."""
    return step.stage not in OWN_TRACES


def step_stages(step) -> tuple[str, ...]:
    """The trace stages a step's panels read (what must be computed before it can be drawn)."""
    keys = [p.key for p in step.panels] + [k for p in step.panels if p.diff for k in p.diff]
    return tuple(dict.fromkeys(k[0] for k in keys))


def first_stages(step) -> tuple[str, ...]:
    """A custom request's first part: the stages the step on screen reads."""
    return step_stages(step)


def first_section(step) -> str:
    """A Book request's first part: the chapter section of the step on screen."""
    return step.section


def step_trace(mode: str | None, traces: dict, step):
    """The trace of ``traces`` (mode "book": section -> trace; "custom": {CUSTOM: trace}) that
    chapter step ``step`` is drawn from; None while it, or a stage the step reads, is computing."""
    trace = traces.get(step.section) if mode == "book" else traces.get(CUSTOM)
    if trace is not None and not all(s in trace.stages for s in step_stages(step)):
        return None
    return trace


class Schedule:
    """Which stages of a set of traces the chapter's steps can be drawn from."""

    def __init__(self, steps):
        # (section, stages) per chapter step, once each: what the readiness checks go through
        self._needs = tuple(dict.fromkeys((s.section, step_stages(s)) for s in steps if is_chapter(s)))
        self.stages = frozenset(name for _section, stages in self._needs for name in stages)

    def ready_stages(self, mode: str | None, traces: dict) -> frozenset[str]:
        """The stages every chapter step that reads them can be drawn from: a custom trace's own
        stages; in the Book preset those whose every section is in (a section still computing
        holds back the stages its steps read)."""
        ready: set[str] = set()
        missing: set[str] = set()
        for section, stages in self._needs:
            trace = traces.get(section) if mode == "book" else traces.get(CUSTOM)
            for name in stages:
                (ready if trace is not None and name in trace.stages else missing).add(name)
        return frozenset(ready - missing)

    def complete(self, mode: str | None, traces: dict) -> bool:
        """Whether ``traces`` hold every stage and section the chapter's steps read: nothing more
        of their request follows (no traces at all: nothing follows either)."""
        return not traces or self.ready_stages(mode, traces) >= self.stages


@lru_cache(maxsize=1)
def chapter_schedule() -> Schedule:
    """The Schedule of the app's steps (gui/resources/steps.json)."""
    from gui.steps import load_steps
    return Schedule(load_steps())
