"""Every step's title, formula and explanation fit the input, the mode and the book's notation.

Rendered from real traces through the functions the GUI calls (``title_and_formula`` for the
step view, ``explanation_html`` for the explanation pane), for the Book preset and for own
settings: a 10-token sentence, d_out 768 with 12 heads (10 and 1024 tokens), one head of width
1, many heads of width 1, a one-token text without the causal mask.
"""
from __future__ import annotations

import html
import re
from decimal import Decimal

import numpy as np
import pytest

from core import build_trace
from core.book import BOOK_SECTIONS, book_config
from core.config import AttentionConfig
from core.tokens import BOOK_TOKENS
from gui.explain import explanation_html
from gui.steps import load_steps, step_numbers
from gui.texts import ROW_SHOWN, TOKEN_CHARS, equation, render, title_and_formula
from tests.gui.conftest import TRACE_TIMEOUT_MS

SENTENCE = "The old dog chased the quick fox which bit him"
OWN = {
    "sentence": AttentionConfig(text=SENTENCE, embeddings="random", d_in=4, d_out=4, num_heads=2,
                                dropout=0.1, batch=2),
    "d_out_768": AttentionConfig(text=SENTENCE, embeddings="random", d_in=16, d_out=768, num_heads=12),
    "long": AttentionConfig(text=" ".join(f"w{i}" for i in range(1024)), embeddings="random",
                            d_in=768, d_out=768, num_heads=12),
    "one_head_hd1": AttentionConfig(text=SENTENCE, embeddings="random", d_in=3, d_out=1, num_heads=1),
    "heads_hd1": AttentionConfig(text=SENTENCE, embeddings="random", d_in=3, d_out=4, num_heads=4),
    "one_token": AttentionConfig(text="Hello", embeddings="random", d_in=3, d_out=2, num_heads=2,
                                 causal=False),
}

NUM = r"\(?-?\d+(?:\.\d+)?\)?"
ARITH = re.compile(rf"({NUM}) ([×/]) ({NUM})((?: \+ {NUM} × {NUM})*) ([=≈]) ({NUM})")
SQUARED = re.compile(r"[A-Za-zα-ω][⁰¹²³⁴⁵⁶⁷⁸⁹ⁱ]")     # x², xⁱ: reads as a power; the book writes x⁽²⁾
MAX_TITLE, MAX_FORMULA, MAX_TEXT = 100, 160, 1400     # characters: what a pane shows without scrolling far


@pytest.fixture(scope="module")
def book_traces():
    return {k: build_trace(book_config(k)) for k in BOOK_SECTIONS}


@pytest.fixture(scope="module")
def own_traces():
    return {name: build_trace(cfg) for name, cfg in OWN.items()}


def rendered(step, trace, book: bool) -> tuple[str, str, str]:
    """(title, formula, explanation as plain text) as the step view and explanation pane show them."""
    title, formula = title_and_formula(step, trace, book)
    source = "Book settings" if book else "Custom settings"
    pane = explanation_html(step, trace, book, source)
    return title, formula, pane


def plain(pane_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", pane_html))


def _dec(s: str) -> Decimal:
    return Decimal(s.strip("()"))


def check_arithmetic(text: str) -> int:
    """Every 'a × b (+ c × d …) = r' / 'a / b = r' works out from its shown numbers; returns how many."""
    n = 0
    for m in ARITH.finditer(text):
        a, op, b, more, sign, r = m.groups()
        terms = [(a, b)] + re.findall(rf"\+ ({NUM}) × ({NUM})", more)
        exact = sum(_dec(x) * _dec(y) if op == "×" else _dec(x) / _dec(y) for x, y in terms)
        shown = _dec(r)
        places = -shown.as_tuple().exponent
        slack = Decimal(5) * Decimal(10) ** -(places + 1)     # half a unit in the shown last place
        if sign == "≈":    # rounded factors: allow what their own rounding can move the result
            for x, y in terms:
                for u, v in ((x, y), (y, x)):
                    slack += abs(_dec(v)) * Decimal(5) * Decimal(10) ** (_dec(u).as_tuple().exponent - 1)
        assert abs(exact - shown) <= slack, f"{m.group(0)!r}: the shown numbers give {exact}"
        n += 1
    return n


def check_step(step, trace, book: bool) -> int:
    title, formula, pane = rendered(step, trace, book)
    text = plain(pane)
    where = f"{step.id} ({'book' if book else trace.config.text[:20]})"
    for part in (title, formula, pane):
        assert "{{" not in part and "}}" not in part, (where, part)
        assert not SQUARED.search(part), (where, SQUARED.search(part).group(0), part)
        assert not re.search(r"out(\d+)…out\1\b", part), (where, part)     # a range of one column
    if not book:
        for part in (title, formula, text):
            assert "book" not in part.lower(), (where, part)
    labels = set(trace.labels)
    for word in BOOK_TOKENS:      # the book's own tokens only where the input has them
        if word not in labels and word not in ("one", "with", "step"):   # also English words
            assert word not in title + formula + text, (where, word)
    for tok in re.findall(r"<b>(.*?)</b>", pane):
        tok = html.unescape(tok)
        assert tok in labels or (tok.endswith("…") and any(l.startswith(tok[:-1]) for l in labels)) \
            or tok == "Shown", (where, tok)
    assert len(title) <= MAX_TITLE and len(formula) <= MAX_FORMULA, (where, title, formula)
    explanation = plain(pane.split("<p style='margin-bottom: 0;'>")[0])
    assert len(explanation) <= MAX_TEXT, (where, len(explanation))
    for row in re.findall(r"\[([^\]]*)\]", explanation):     # no long row pasted into a sentence
        assert len(re.findall(r"-?\d+\.\d+", row)) <= ROW_SHOWN + 2, (where, row)
    return check_arithmetic(title + "\n" + formula + "\n" + text)


def chapter_steps():
    """The chapter's steps (stage 5's texts are drawn from the real model: test_pretrained_stage)."""
    return [s for s in load_steps() if s.stage not in ("pretrained", "decode", "tiled", "rope")]   # decode, tiled,
    # rope: test_decode_stage, test_tiled_rope_stages


def test_book_preset_texts(book_traces):
    worked = sum(check_step(s, book_traces[s.section], True) for s in chapter_steps())
    assert worked >= 3          # 1.2's dot product, 2.5's scaling, 3.7's dropout scaling


@pytest.mark.parametrize("name", list(OWN))
def test_own_settings_texts(own_traces, name):
    worked = sum(check_step(s, own_traces[name], False) for s in chapter_steps())
    assert worked >= 1


def _step(step_id: str):
    return next(s for s in load_steps() if s.id == step_id)


def test_query_step_names_the_inputs_own_token(own_traces):
    trace = own_traces["sentence"]
    title, formula, pane = rendered(_step("simplified.query_scores"), trace, False)
    assert title == "One query first: ω₂ = x⁽²⁾ · x⁽ⁱ⁾ (old)"
    assert formula == "ω₂ᵢ = x⁽²⁾ · x⁽ⁱ⁾"
    _t, _f, first = rendered(_step("simplified.inputs"), trace, False)
    assert "The second token, <b>old</b>, is x⁽²⁾" in first and "book" not in first.lower()


def test_query_step_lists_every_dot_product_with_its_number(book_traces, own_traces):
    # the maps: the query row x⁽²⁾ beside all of X, then its scores
    panels = [(p.key, p.rows) for p in _step("simplified.query_scores").panels]
    assert panels == [(("simplified", "inputs"), (1, 2)), (("simplified", "inputs"), None),
                      (("simplified", "attn_scores"), (1, 2))]
    scores = book_traces["simplified"]["simplified", "attn_scores"].numpy()
    _t, _f, pane = rendered(_step("simplified.query_scores"), book_traces["simplified"], True)
    for i, tok in enumerate(BOOK_TOKENS):
        assert f"ω₂{'₁₂₃₄₅₆'[i]} = x⁽²⁾ · x⁽{'¹²³⁴⁵⁶'[i]}⁾ (<b>{tok}</b>) = {scores[1, i]:.4f}" in pane
    # the book's own numbers, factor by factor (0.55·0.43 + 0.87·0.15 + 0.66·0.89 = 0.9544)
    assert "0.5500 × 0.4300 + 0.8700 × 0.1500 + 0.6600 × 0.8900 = 0.9544" in pane
    trace = own_traces["sentence"]      # 10 tokens: the first six, then the last, two-digit index with a comma
    s = trace["simplified", "attn_scores"].numpy()
    _t, _f, pane = rendered(_step("simplified.query_scores"), trace, False)
    assert f"ω₂,₁₀ = x⁽²⁾ · x⁽¹⁰⁾ (<b>him</b>) = {s[1, 9]:.4f}" in pane and "(<b>fox</b>)" not in pane


def test_long_rows_show_their_first_values_and_the_count(own_traces):
    trace = own_traces["d_out_768"]
    _t, _f, pane = rendered(_step("multihead.out_proj"), trace, False)
    row = trace["multihead", "context_vecs"].numpy()[0]
    first = ", ".join(f"{v:.4f}" for v in row[:ROW_SHOWN])
    assert f"the first row is [{first}, … (768 values)]" in pane
    assert "book" not in plain(pane).lower()
    _t, _f, book_pane = rendered(_step("multihead.out_proj"), build_trace(book_config("fused")), True)
    assert "the book prints the first row [0.3190, 0.4858]" in book_pane


def test_head_columns_at_head_width_one(own_traces):
    _t, _f, pane = rendered(_step("multihead.merge"), own_traces["one_head_hd1"], False)
    assert "out0…out0" not in pane and "the only column, out0, is head 0's" in pane
    _t, _f, pane = rendered(_step("multihead.wrapper_concat"), own_traces["heads_hd1"], False)
    assert "column out0 is head 0, column out1 head 1, …, column out3 head 3" in pane
    _t, _f, pane = rendered(_step("multihead.merge"), own_traces["sentence"], False)
    assert "columns out0…out1 are head 0, columns out2…out3 head 1" in pane


def test_dropout_example_multiplies_out(book_traces):
    trace = book_traces["causal"]
    _t, _f, pane = rendered(_step("causal.dropped"), trace, True)
    a = trace["causal", "attn_weights"].numpy()
    dropped = trace["causal", "dropped_weights"].numpy()
    assert "0.3800 × 2 = 0.7599" not in pane
    assert check_arithmetic(plain(pane)) == 1
    # the worked cell is one the dropout kept: its A_drop is A × 2
    m = re.search(r"A_drop\[(\w+), (\w+)\] = ([\d.]+) × 2 = ([\d.]+) \(kept\)", plain(pane))
    r, c = (trace.labels.index(t) for t in m.group(1, 2))
    assert dropped[r, c] == pytest.approx(2 * a[r, c]) and dropped[r, c] > 0
    assert float(m.group(4)) == pytest.approx(float(dropped[r, c]), abs=1e-6)


def test_equation_finds_decimals_that_work_out():
    assert equation([(0.37996, 2.0)], 0.75992) == "0.37996 × 2 = 0.75992"
    assert equation([(0.55, 0.43), (0.87, 0.15)], 0.55 * 0.43 + 0.87 * 0.15) == \
        "0.5500 × 0.4300 + 0.8700 × 0.1500 = 0.3670"
    out = equation([(1.85238, 1.41421356)], 1.85238 / 1.41421356, op="/")
    assert check_arithmetic(out) == 1
    assert equation([(0.5, 2.0)], 1.2345) == "0.5000 × 2 ≈ 1.2345"    # no precision makes it true


def test_equation_works_out_for_float32_arithmetic():
    """Random float32 products, quotients and 3-term dot products, as the trace computes them."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b = rng.normal(size=(2, 3)).astype(np.float32)
        dot = equation(list(zip(a.tolist(), b.tolist())), float(np.dot(a, b)))
        prod = equation([(float(a[0]), 1 / 0.9)], float(a[0] * np.float32(1 / 0.9)))
        quot = equation([(float(a[1]), 1.7320508)], float(a[1] / np.float32(1.7320508)), op="/")
        for out in (dot, prod, quot):
            assert check_arithmetic(out) == 1, out


def test_long_token_labels_are_cut(own_traces):
    word = "a" * 60
    trace = build_trace(AttentionConfig(text=f"x {word} y", embeddings="random", d_in=3, d_out=2))
    title, _f, pane = rendered(_step("simplified.query_scores"), trace, False)
    assert title.endswith("(" + word[:TOKEN_CHARS - 1] + "…)") and word not in pane


def test_a_token_that_looks_like_a_field_stays_text():
    trace = build_trace(AttentionConfig(text="{ @ } <", embeddings="random", d_in=2, d_out=2))
    assert render("{{tok0}}{{tok0}}{{tok1}}query_dots{{tok2}}{{tok2}} <b>{{tok3}}</b>", trace, escape=True) == \
        "{{@query_dots}} <b>&lt;</b>"


def test_step_numbers_and_titles_stay_fixed_for_the_navigator():
    # the navigator lists the fixed titles (no fields), the step view the filled-in heading
    assert all("{{" not in s.title for s in load_steps())
    assert len(step_numbers()) == len(load_steps())


def test_window_texts_follow_the_input_and_the_mode(window, qtbot):
    c = window.controller
    query = [s.id for s in c.steps].index("simplified.query_scores")
    c.go(query)
    assert window.step_view.title.text() == f"{step_numbers()[query]}  One query first: ω₂ = x⁽²⁾ · x⁽ⁱ⁾ (journey)"
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(text=SENTENCE, embeddings="random")
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert window.step_view.title.text() == f"{step_numbers()[query]}  One query first: ω₂ = x⁽²⁾ · x⁽ⁱ⁾ (old)"
    chapter = [i for i, s in enumerate(c.steps) if s.stage not in ("pretrained", "decode", "tiled", "rope")]
    for i in chapter:
        c.go(i)
        shown = window.explanation.toPlainText()
        assert "book" not in shown.lower() and "journey" not in shown, (c.step.id, shown)
    c.go(0)
    assert "The second token, old, is x⁽²⁾" in window.explanation.toPlainText()
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.use_book()
    assert "The book's second token, journey, is x⁽²⁾ = [0.5500, 0.8700, 0.6600]" in window.explanation.toPlainText()
    c.go(chapter[-1])
    assert "the book prints the first row [0.3190, 0.4858]" in window.explanation.toPlainText()
