"""The stages of chapter 3, one file each, and ``STAGES``: the table everything else reads.

Each stage file (simplified.py, trainable.py, causal.py, multihead.py, and pretrained.py:
the same steps inside the real all-MiniLM-L6-v2) holds, for its section of the chapter:
- ``TERMS``: name -> Term (symbol, formula, meaning, axes) for each intermediate, in order;
- ``forward(...)``: the chapter's lines, written once against ``ops`` (core/stages/ops.py: plain
  torch, or the engine's), recording each intermediate by name where it is made;
- ``code(cfg)``: the code panel's lines, each tagged with the intermediate it makes: for the
  chapter's stages, the forward's own (core/stages/lines.py reads them from its source, the
  plain ops' torch written in), after the weights' draw and what the forward is given;
- ``explain(cell)``: the inspector's arithmetic for a clicked cell.

The trace, the export (file names, manifest order), the vocabulary, the memory estimate and
the GUI read ``STAGES``; adding an intermediate means adding it to one stage file.
Files here import only torch, math and core.weights (tests/core/stages/test_contract.py).
"""
from __future__ import annotations

from core.stages import causal, multihead, pretrained, simplified, trainable
from core.stages.schema import LEAD_KINDS, Stage, Term

# name -> Stage, in the chapter's order
STAGES: dict[str, Stage] = {s.STAGE.name: s.STAGE for s in (simplified, trainable, causal, multihead, pretrained)}
# the stages computed from the chapter's AttentionConfig (build_trace); ``pretrained`` runs on
# the real model's checkpoint instead (core.pretrained.build_pretrained)
CHAPTER: dict[str, Stage] = {name: s for name, s in STAGES.items() if not s.external}

__all__ = ["CHAPTER", "LEAD_KINDS", "STAGES", "Stage", "Term", "causal", "multihead", "pretrained", "simplified",
           "trainable"]
