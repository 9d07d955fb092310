"""gui/steps.py and resources/steps.json: every vocabulary name has a step, in the chapter's order; texts render."""
from __future__ import annotations

import re

from core import build_trace
from core.book import book_config, BOOK_SECTIONS
from core.config import BOOK_TEXT
from core.vocabulary import VOCABULARY
from gui.controller import BOOK_TEXT as GUI_BOOK_TEXT
from gui.steps import load_steps, stages_in_order
from gui.texts import render


def test_book_text_matches_the_core():
    assert GUI_BOOK_TEXT == BOOK_TEXT


def test_every_vocabulary_name_has_a_step():
    """Every term the stage table marks as shown (Term.shown; the others are exported only)."""
    shown = {p.key for s in load_steps() for p in s.panels} | {
        k for s in load_steps() for p in s.panels if p.diff for k in p.diff}
    missing = [(stage, name) for stage, terms in VOCABULARY.items() for name, term in terms.items()
               if term.shown and (stage, name) not in shown]
    assert missing == []


def test_steps_follow_the_chapters_order():
    ids = [s.id for s in load_steps()]
    assert [stage for stage, _t, _i in stages_in_order()] == ["simplified", "trainable", "causal", "multihead",
                                                              "pretrained", "decode", "tiled", "rope"]
    order = ["simplified.query_scores", "simplified.query_normalise", "simplified.scores",
             "trainable.qkv", "trainable.scores", "trainable.scaled", "trainable.weights_softmax",
             "trainable.context", "causal.mask", "causal.approach_a", "causal.approach_b", "causal.compare",
             "causal.dropout_mask", "causal.dropped", "causal.batch", "multihead.wrapper_weights",
             "multihead.wrapper_concat", "multihead.fused_weights", "multihead.split", "multihead.scores",
             "multihead.weights", "multihead.context_heads", "multihead.merge", "multihead.out_proj"]
    assert [ids.index(i) for i in order] == sorted(ids.index(i) for i in order)
    assert all(s.section in BOOK_SECTIONS for s in load_steps() if s.stage not in ("pretrained", "decode", "tiled", "rope"))
    assert {s.section for s in load_steps() if s.stage == "pretrained"} == {"pretrained"}   # the real model
    assert {s.section for s in load_steps() if s.stage == "decode"} == {"decode"}           # its own settings
    for stage in ("tiled", "rope"):                                                          # theirs (stages 7, 8)
        assert {s.section for s in load_steps() if s.stage == stage} == {stage}


def test_every_text_renders_without_leftover_fields():
    traces = {k: build_trace(book_config(k)) for k in BOOK_SECTIONS}
    traces["bias"] = build_trace(book_config("fused").replace(qkv_bias=True, d_out=4, num_heads=2))
    for step in load_steps():
        if step.stage in ("pretrained", "decode", "tiled", "rope"):   # their own traces: their own tests
            continue
        for trace in (traces[step.section], traces["bias"]):
            for text in (step.title, step.formula, step.text):
                out = render(text, trace)
                assert not re.search(r"\{\{|\}\}", out), (step.id, out)


def test_texts_carry_the_current_numbers():
    step = next(s for s in load_steps() if s.id == "trainable.query_2")
    out = render(step.text, build_trace(book_config("v1")))
    assert "0.4306, 1.4551" in out and "1.8524" in out
