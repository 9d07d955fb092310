"""gui/settings.py and gui/scheduler.py: the frozen Settings value (its drop rules, frozen-ness,
equality) and, through a real Controller whose worker runs when the test says so, what the
view model's requested/applied settings and ready stages do: a refused edit puts the requested
edits back to the applied ones, a refused change after a first part puts the last complete
traces back, and the side panes draw once, when every stage is in."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core import AttentionConfig, build_trace
from core.book import book_config
from gui.settings import CUSTOM, Settings
from gui.view_model import Event

FIELDS = {**book_config("fused").to_dict(), "device": "cpu", "dtype": "float32"}


def edited() -> Settings:
    """A custom Settings with every kind of edit (the arrays are stand-ins: no trace is made)."""
    from core.inputs import Inputs
    return Settings(CUSTOM, FIELDS, Inputs(("a", "b"), np.ones((2, 3))), {"W_key": np.zeros((3, 2))},
                    {"W_out": np.eye(2)}, multihead_source="a trained layer")


# ---- the value ---------------------------------------------------------------------------------
# which edits a change of each field drops (written out here, not read from gui.settings)
DROPS = {"text": {"inputs"}, "embeddings": {"inputs"}, "d_in": {"inputs", "weights", "multihead"},
         "d_out": {"weights", "multihead"}, "init": {"weights"}, "seed": {"weights"},
         "num_heads": {"multihead"}, "qkv_bias": {"multihead"}, "causal": set(), "dropout": set(),
         "batch": set(), "device": set()}
NEW = {"text": "x y", "embeddings": "random", "d_in": 5, "d_out": 4, "init": "normal", "seed": 99,
       "num_heads": 1, "qkv_bias": True, "causal": False, "dropout": 0.5, "batch": 3, "device": "auto"}


@pytest.mark.parametrize("field", sorted(DROPS))
def test_a_config_change_drops_the_edits_it_invalidates(field):
    s = edited()
    assert NEW[field] != s.params[field]
    out = s.changed(s.params, **{field: NEW[field]})
    assert out.mode == CUSTOM and out.params == {**FIELDS, field: NEW[field]}
    kept = {"inputs": out.inputs is s.inputs, "weights": out.weights == s.weights and bool(out.weights),
            "multihead": out.multihead == s.multihead and out.multihead_source == "a trained layer"}
    dropped = {"inputs": out.inputs is None, "weights": not out.weights,
               "multihead": not out.multihead and out.multihead_source is None}
    for edit in ("inputs", "weights", "multihead"):
        assert (dropped if edit in DROPS[field] else kept)[edit], (field, edit)
    same = s.changed(s.params, **{field: s.params[field]})      # the value it had: nothing dropped
    assert same == s


def test_leaving_the_book_starts_without_edits_and_the_book_has_none():
    out = Settings.BOOK.changed(FIELDS, seed=5)
    assert out == Settings(CUSTOM, {**FIELDS, "seed": 5})
    assert out.inputs is None and not out.weights and not out.multihead
    with pytest.raises(ValueError):
        Settings("book", FIELDS)
    with pytest.raises(ValueError):
        Settings("book", weights={"W_key": np.zeros((3, 2))})
    with pytest.raises(ValueError):
        Settings("books")


def test_edits_merge_keep_and_go():
    s = edited()
    w = np.full((3, 2), 0.5)
    out = s.with_edits(s.params, weights={"W_query": w})
    assert out.inputs is s.inputs and set(out.weights) == {"W_key", "W_query"} and out.weights["W_query"] is w
    assert out.multihead == s.multihead                       # stage 4's layer is not an edit of the tables
    bare = out.without_edits()
    assert bare == Settings(CUSTOM, FIELDS) and bare.multihead_source is None
    back = bare.with_edits_from(s)
    assert back == s and Settings.BOOK.with_edits_from(s) is Settings.BOOK
    assert Settings(CUSTOM, FIELDS, multihead_source="x").multihead_source is None   # no source without weights


def test_settings_are_frozen_and_share_their_arrays():
    params = dict(FIELDS)
    arr = np.zeros((3, 2))
    weights = {"W_key": arr}
    s = Settings(CUSTOM, params, weights=weights)
    params["seed"], weights["W_query"] = 1234, arr               # the caller's dicts are not the Settings'
    assert s.params["seed"] == FIELDS["seed"] and set(s.weights) == {"W_key"}
    assert s.weights["W_key"] is arr                             # not copied
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mode = "book"
    with pytest.raises(TypeError):
        s.params["seed"] = 1
    with pytest.raises(TypeError):
        s.weights["W_key"] = arr
    with pytest.raises(TypeError):
        hash(s)


def test_equal_settings_are_equal_values():
    from core.inputs import Inputs
    a = edited()
    b = Settings(CUSTOM, dict(FIELDS), Inputs(("a", "b"), np.ones((2, 3))), {"W_key": np.zeros((3, 2))},
                 {"W_out": np.eye(2)}, multihead_source="a trained layer")
    assert a == b                                                 # other arrays, the same numbers
    assert a != dataclasses.replace(b, weights={"W_key": np.ones((3, 2))})
    assert a != dataclasses.replace(b, weights={"W_key": np.zeros((2, 3))})
    assert a != dataclasses.replace(b, inputs=Inputs(("a", "c"), np.ones((2, 3))))
    assert a != dataclasses.replace(b, params={**FIELDS, "seed": 1})
    assert a != Settings.BOOK and Settings.BOOK == Settings()
    nan = {"W_key": np.full((3, 2), np.nan)}
    assert Settings(CUSTOM, FIELDS, weights=nan) == Settings(CUSTOM, FIELDS, weights={"W_key": np.full((3, 2), np.nan)})


# ---- through a Controller --------------------------------------------------------------------
class HandWorker:
    """The trace worker's work (gui.worker.compute) run when the test says so, on this thread."""

    def __init__(self):
        self.partial, self.done = Event("partial"), Event("done")
        self.requests = []
        self._rest = None

    def submit(self, req) -> None:
        self.requests.append(req)

    def stop(self) -> None:
        pass

    def first_part(self) -> None:
        """Deliver the latest request's first part; its rest waits for rest()."""
        from gui.worker import compute
        parts = []
        self._rest = compute(self.requests[-1], partial=parts.append)
        assert parts, "the request has no first part"
        self.partial.emit(parts[0])

    def rest(self) -> None:
        self.done.emit(self._rest)

    def all(self) -> None:
        from gui.worker import compute
        parts = []
        result = compute(self.requests[-1], partial=parts.append)
        for part in parts:
            self.partial.emit(part)
        self.done.emit(result)


@pytest.fixture
def hand(qapp):
    from gui.controller import Controller
    worker = HandWorker()
    c = Controller(worker=worker)
    errors = []
    c.error.connect(lambda field, message: errors.append(field))
    c.errors = errors
    c.restore("custom", FIELDS)
    worker.all()
    assert c.model.applied == Settings(CUSTOM, FIELDS) and c.model.ready()
    yield c, worker
    c.shutdown()


def step_of(c, step_id: str) -> int:
    return [s.id for s in c.steps].index(step_id)


def test_a_refused_edit_puts_the_requested_edits_back_to_the_applied_ones(hand):
    c, worker = hand
    good = np.full((FIELDS["d_in"], FIELDS["d_out"]), 0.25)
    c.set_edits(weights={"W_key": good})
    worker.all()
    applied = c.model.applied
    assert applied.weights["W_key"] is good and c.model.requested == applied
    traces = c.model.traces
    np.testing.assert_array_equal(c.trace_for(c.steps[step_of(c, "trainable.weights")])["trainable", "W_key"].numpy(),
                                  good.astype(np.float32))
    c.set_edits(weights={"W_query": np.zeros((2, 2))})             # the wrong shape: refused by the worker
    assert set(c.model.requested.weights) == {"W_key", "W_query"}
    worker.all()
    assert c.errors == ["W_query"]
    assert c.model.requested == applied and c.model.applied is applied and c.model.traces is traces
    assert c.weights == {"W_key": good} and not c.is_busy()
    # a refused config field is not an edit: the attempted config stays asked for, the edits too
    c.set_params(num_heads=7)                                     # d_out 2 is not divisible by 7: refused here
    assert c.errors[-1] == "num_heads" and len(worker.requests) == 3
    assert c.model.requested.params["num_heads"] == 7 and c.model.requested.weights == applied.weights
    assert c.model.applied is applied and c.model.traces is traces


def test_a_refused_change_after_a_first_part_puts_the_complete_traces_back(hand):
    c, worker = hand
    c.go(step_of(c, "multihead.weights"))
    before, applied = c.model.traces, c.model.applied
    c.set_params(batch=2)
    worker.first_part()
    assert tuple(c.model.traces["custom"].stages) == ("multihead",) and c.model.ready_stages == {"multihead"}
    assert c.model.applied == c.model.requested and c.model.applied.params["batch"] == 2
    assert c.model.trace.config.batch == 2 and c.is_busy()
    c.set_params(num_heads=7)                                     # refused: the rest of batch 2 never comes
    assert c.errors == ["num_heads"] and not c.is_busy()
    assert c.model.traces is before and c.model.applied is applied
    assert c.model.ready_stages == {"simplified", "trainable", "causal", "multihead"} and c.model.ready()
    worker.rest()                                                 # batch 2's rest, late: dropped
    assert c.model.traces is before
    assert all(c.trace_for(s) is not None for s in c.steps if c.model.is_chapter(s))


def test_stages_arrive_in_two_parts_and_the_side_panes_draw_once(hand, qtbot):
    from gui.code_panel import CodePanel
    from gui.explain import ExplanationView
    c, worker = hand
    m = c.model
    c.go(step_of(c, "multihead.weights"))
    explain, code = ExplanationView(m), CodePanel(m)
    qtbot.addWidget(explain)
    qtbot.addWidget(code)
    drawn = {"explain": 0, "code": 0}
    explain.refresh = lambda f=explain.refresh: (drawn.__setitem__("explain", drawn["explain"] + 1), f())
    code.refresh = lambda f=code.refresh: (drawn.__setitem__("code", drawn["code"] + 1), f())
    arrived, shown = [], []
    m.stages_ready.connect(lambda stages: arrived.append((set(stages), dict(drawn))))
    m.shown_changed.connect(lambda: shown.append(dict(drawn)))
    c.set_params(seed=11)
    worker.first_part()
    assert arrived == [({"multihead"}, {"explain": 0, "code": 0})] and shown == [{"explain": 0, "code": 0}]
    assert not m.ready() and m.ready("multihead") and not m.ready(("multihead", "simplified"))
    assert m.trace is not None and m.trace_for(c.steps[step_of(c, "causal.mask")]) is None
    worker.rest()
    assert [a[0] for a in arrived] == [{"multihead"}, {"simplified", "trainable", "causal", "multihead"}]
    assert drawn == {"explain": 1, "code": 1}                      # once each, with the whole trace
    assert m.ready() and "seed 11" in explain.toPlainText()
    full = build_trace(AttentionConfig(**{**FIELDS, "seed": 11}))
    for item in full:
        assert np.array_equal(item.numpy(), m.trace[item.key].numpy(), equal_nan=True), item.key


def test_results_say_whether_more_follows(hand):
    """Result.partial is the scheduler's: a trace without every stage, a book without every section."""
    from gui.worker import Request, Result, compute
    c, _worker = hand
    step = c.steps[step_of(c, "causal.mask")]
    req = Request.for_settings(Settings(CUSTOM, FIELDS), step)
    assert set(req.stages) == {p.key[0] for p in step.panels} and "causal" in req.stages
    parts = []
    out = compute(req, partial=parts.append)
    assert [p.partial for p in parts] == [True] and not out.partial and out.settings == Settings(CUSTOM, FIELDS)
    book = Request.for_settings(Settings.BOOK, step)
    assert book.first == "causal" and book.params is None
    assert Result(1, "book", traces={"v1": out.traces["custom"]}).partial
    assert not Result(1, "custom", error=("", "no")).partial
