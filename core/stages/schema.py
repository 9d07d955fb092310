"""What the STAGES table holds: one Term per intermediate, one Stage per section of chapter 3.

A Term is everything the app knows about one intermediate: its symbol and formula (GUI
labels, the explanation pane), its meaning, its axes (the shape: labels, export file names,
the memory estimate) and how a view draws it (masked cells, colour scale, head columns). Its torch line lives in its stage's ``code`` and its inspector rule
in its stage's ``explain``, in the same file as the term.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# Axis kinds, and what each one's size is: "token"/"query"/"key" = T (labelled by the tokens),
# "in" = d_in, "out" = d_out, "hd" = head_dim, "head" = h, "batch" = b (added at run time to
# batched terms when batch > 1); "ff" = the feed-forward width (the pretrained stage only);
# the decode stage's (core/stages/decode.py): "group" = its K/V heads, "kv", "latent", "new",
# "pos", "slot", "one"; the tiled-attention stage's (core/stages/tiled.py): "tile" = the kernel's
# tiles in order, "field" = a table's columns, "method" = standard vs tiled; the RoPE stage's
# (core/stages/rope.py): "position" = a token as the leading axis of its (pair, two) slice,
# "pair" = head_dim / 2 rotated pairs, "two" = a pair's two components.
AXIS_KINDS = ("token", "query", "key", "in", "out", "hd", "head", "batch", "ff",
              "group", "kv", "latent", "new", "pos", "slot", "one",
              "tile", "field", "method", "position", "pair", "two")
LEAD_KINDS = ("batch", "head", "group", "position")   # leading axes enumerated into one exported slice each
COLOURS = ("signed", "prob", "binary", "nonneg")   # Term.colours: the colour scales a view draws with


@dataclass(frozen=True)
class Term:
    """One intermediate of one stage (DESIGN.md's vocabulary)."""

    symbol: str                 # short math symbol, e.g. "ω"
    formula: str                # how it is made, e.g. "ω = Q Kᵀ"
    meaning: str                # one line for tooltips and the export's documentation
    axes: tuple[str, ...]       # axis kinds, e.g. ("head", "query", "key")
    batched: bool = False       # gains a leading "batch" axis when batch > 1
    shown: bool = True          # a step of the window draws it (False: exported, not drawn)
    optional: bool = False      # present only for some configs (the qkv biases)
    # how a view draws it (read by gui/matrices.py, which holds no names):
    masked: bool = False        # the causal mask hides its cells above the diagonal (drawn hatched)
    colours: str = "signed"     # "signed": diverging, symmetric; "prob": [0, 1] when every value lies
                                # in it (weights); "binary": 0/1; "nonneg": [0, max(1, largest)] when ≥ 0
    head_columns: bool = False  # its columns are the heads' side by side (lines between the heads)

    def __post_init__(self):
        if self.colours not in COLOURS:
            raise ValueError(f"colours must be one of {COLOURS}, got {self.colours!r}")


def term(symbol, formula, meaning, *axes, batched=False, shown=True, optional=False, masked=False,
         colours="signed", head_columns=False) -> Term:
    return Term(symbol, formula, meaning, tuple(axes), batched, shown, optional, masked, colours, head_columns)


@dataclass(frozen=True)
class Stage:
    """One stage: its terms in the chapter's order, the book's forward, code lines and rules."""

    name: str                                    # "causal"
    title: str                                   # shown in the navigator
    section: str                                 # the chapter's section, e.g. "3.5"
    terms: dict[str, Term]                       # name -> term, in the trace's order
    forward: Callable[..., dict]                 # the chapter's lines: tensors in, named tensors out
    code: Callable[..., list]                    # code(cfg) -> [(name or None, torch line), ...]
    explain: Callable[..., object]               # explain(cell) -> Explanation or None (see core.provenance)
    batched: bool = False                        # its tensors gain a leading batch axis when batch > 1
    # its inputs are not the chapter's AttentionConfig (the pretrained model's checkpoint and
    # text): build_trace, the memory estimate and the chapter's vocabulary leave it out
    external: bool = False
