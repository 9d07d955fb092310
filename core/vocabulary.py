"""DESIGN.md's vocabulary, as read from the stage table (core.stages.STAGES).

Kept for the names the rest of the app already uses: ``STAGES`` (stage names in order),
``STAGE_TITLES``, ``VOCABULARY[stage][name] -> Term``: the chapter's stages (build_trace computes
them; the pretrained stage is core.stages.STAGES["pretrained"]). Define terms in the stage files.
"""
from __future__ import annotations

from core.stages import CHAPTER as _TABLE
from core.stages.schema import AXIS_KINDS, Term

STAGES: tuple[str, ...] = tuple(_TABLE)
STAGE_TITLES: dict[str, str] = {name: s.title for name, s in _TABLE.items()}
# Stages whose tensors gain a leading batch axis when batch > 1 (the book batches from 3.5.3 on).
BATCHED_STAGES: tuple[str, ...] = tuple(name for name, s in _TABLE.items() if s.batched)
VOCABULARY: dict[str, dict[str, Term]] = {name: dict(s.terms) for name, s in _TABLE.items()}

__all__ = ["AXIS_KINDS", "BATCHED_STAGES", "STAGES", "STAGE_TITLES", "Term", "VOCABULARY"]
