"""The stepper's steps as data (no Qt, no torch): loaded from ``resources/steps.json``.

A :class:`Step` names the matrices it shows (:class:`Panel`: a trace intermediate, an
optional row slice, a difference of two intermediates, the axis drawn as a grid), its
explanation texts (``title`` is fixed, for the navigator; ``heading`` is the title as a template
filled with the current tokens) and the book section whose config reproduces the chapter's numbers.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
# The lru_caches below are pure memos (size 1, no arguments) of read-only resource files;
# what they return is immutable (tuples of frozen dataclasses, a MappingProxyType).


@dataclass(frozen=True)
class Panel:
    """One matrix of a step: ``key`` = (stage, name) of a trace intermediate."""

    key: tuple[str, str]
    rows: tuple[int, int] | None = None              # show rows[0]:rows[1] only
    diff: tuple[tuple[str, str], tuple[str, str]] | None = None   # key_a − key_b
    label: str = ""                                  # title override (used by diff panels)
    optional: bool = False                           # skip when the trace lacks it (biases)
    grid: str | None = None                          # "head" or "batch": draw this axis as a grid
    scale: str = ""                                  # panels with the same name share one colour scale
    merge: bool = False                              # per-head (b, h, T, hd) drawn as (T, d_out)

    @property
    def is_diff(self) -> bool:
        return self.diff is not None


@dataclass(frozen=True)
class Step:
    id: str
    stage: str
    stage_title: str
    title: str
    section: str          # key of core.book.BOOK_SECTIONS
    panels: tuple[Panel, ...]
    formula: str
    text: str
    heading: str = ""     # the title with the current tokens ({{…}} fields); navigator uses title
    view: str = ""        # a step drawn by a view of its own instead of matrices ("gallery", "lines")
    compare: bool = False  # its maps are compared: one row when they fit (shrunk, values hidden) before stacking

    def __post_init__(self) -> None:
        if not self.heading:
            object.__setattr__(self, "heading", self.title)


def _key(text: str) -> tuple[str, str]:
    stage, name = text.split(".", 1)
    return stage, name


def _panel(d: dict) -> Panel:
    if "diff" in d:
        a, b = (_key(k) for k in d["diff"])
        return Panel(key=a, diff=(a, b), label=d.get("label", ""))
    rows = tuple(d["rows"]) if "rows" in d else None
    return Panel(key=_key(d["m"]), rows=rows, label=d.get("label", ""),
                 optional=bool(d.get("optional", False)), grid=d.get("grid"), scale=d.get("scale", ""),
                 merge=bool(d.get("merge", False)))


@lru_cache(maxsize=1)
def load_steps() -> tuple[Step, ...]:
    """All steps in the chapter's order."""
    data = json.loads((RESOURCES / "steps.json").read_text(encoding="utf-8"))
    out = []
    for stage in data["stages"]:
        for s in stage["steps"]:
            out.append(Step(
                id=s["id"], stage=stage["stage"], stage_title=stage["title"], title=s["title"],
                section=s["section"], panels=tuple(_panel(p) for p in s["panels"]),
                formula=s.get("formula", ""), text=s.get("text", ""), heading=s.get("heading", ""),
                view=s.get("view", ""), compare=bool(s.get("compare", False)),
            ))
    return tuple(out)


@lru_cache(maxsize=1)
def cell_templates() -> Mapping[str, str]:
    """Hover text templates, 'stage.name' -> template with {r}, {c}, {v}, {h} (read-only: memoised)."""
    data = json.loads((RESOURCES / "cells.json").read_text(encoding="utf-8"))
    return MappingProxyType(dict(data["cells"]))


def stages_in_order() -> list[tuple[str, str, list[int]]]:
    """(stage, stage title, indices of its steps) in order, for the navigator."""
    out: list[tuple[str, str, list[int]]] = []
    for i, step in enumerate(load_steps()):
        if not out or out[-1][0] != step.stage:
            out.append((step.stage, step.stage_title, []))
        out[-1][2].append(i)
    return out


@lru_cache(maxsize=1)
def step_numbers() -> tuple[str, ...]:
    """'stage.step' numbers as the navigator shows them: '1.1', …, '2.5', …"""
    out = []
    for n, (_stage, _title, indices) in enumerate(stages_in_order(), start=1):
        out.extend(f"{n}.{k}" for k in range(1, len(indices) + 1))
    return tuple(out)
