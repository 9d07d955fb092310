"""gui/view_model.py, without Qt: the state every view observes, its events and the inspector's marks.

The matrices the model shows are checked against the trace's own tensors (exact: they are
slices of the same numbers, no arithmetic).
"""
from __future__ import annotations

import numpy as np
import pytest

from core import AttentionConfig, build_trace
from gui.view_model import CUSTOM, Event, Frame, Mark, ViewModel, frames_for
from tests.gui.fixtures import run_python, step_index


@pytest.fixture(scope="module")
def trace():
    return build_trace(AttentionConfig(embeddings="random", text="the cat sat on the mat", d_in=4, d_out=6,
                                       num_heads=3, batch=2, seed=5))


@pytest.fixture
def model(trace):
    m = ViewModel()
    m.set_traces(CUSTOM, {CUSTOM: trace})
    return m


def test_the_view_model_imports_no_qt():
    proc = run_python("""
        import sys
        import gui.view_model
        bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph', 'torch')]
        print('QT', bad)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "QT []" in proc.stdout


def test_every_listener_sees_the_new_state_whatever_the_connection_order(model, trace):
    """The first listener connected already reads the new step's matrices, focus and head."""
    seen = []

    def look(*_args):
        data, k = model.focused()
        seen.append((model.index, [d.key for d in model.shown], data.key, k, model.focus_picked))
    for event in (model.step_changed, model.shown_changed):
        event.connect(look)
    model.set_focus(1, 0)
    target = step_index(model, "multihead.weights")
    model.go(target)
    expected = (target, [("multihead", "attn_weights")], ("multihead", "attn_weights"), 0, False)
    assert seen == [expected, expected]


def test_shown_matrices_are_the_traces_slices(model, trace):
    model.go(step_index(model, "multihead.weights"))
    (data,) = model.shown
    weights = trace["multihead", "attn_weights"].numpy()        # (b, h, T, T)
    assert model.num_heads == 3 and model.batch_selectable and model.batch_size == 2
    assert [m.index for m in data.maps] == [(0, 0), (0, 1), (0, 2)]
    for h, m in enumerate(data.maps):
        np.testing.assert_array_equal(m.values, weights[0, h])
    heads, batches = [], []
    model.head_changed.connect(heads.append)
    model.batch_changed.connect(batches.append)
    model.set_head(1)
    model.set_batch_index(1)
    (data,) = model.shown
    assert heads == [1] and batches == [1] and [m.index for m in data.maps] == [(1, 1)]
    np.testing.assert_array_equal(data.maps[0].values, weights[1, 1])
    model.set_batch_index(7)                                     # past the batch: its last item
    assert model.batch_index == 1


def test_a_trace_with_fewer_heads_drops_the_head_and_the_batch_item(model):
    model.go(step_index(model, "multihead.weights"))
    model.set_head(2)
    model.set_batch_index(1)
    one = build_trace(AttentionConfig(embeddings="random", text="the cat sat", d_in=4, d_out=4, num_heads=2, seed=5))
    heads, batches = [], []
    model.head_changed.connect(heads.append)
    model.batch_changed.connect(batches.append)
    model.set_traces(CUSTOM, {CUSTOM: one})
    assert heads == [None] and batches == [0]
    assert model.head is None and model.batch_index == 0 and not model.batch_selectable
    weights = one["multihead", "attn_weights"].numpy()          # (h, T, T): batch 1 has no batch axis
    assert weights.shape == (2, 3, 3) and [m.index for m in model.shown[0].maps] == [(0,), (1,)]
    np.testing.assert_array_equal(model.shown[0].maps[1].values, weights[1])


def test_go_clamps_and_resets_the_focus(model):
    steps = []
    model.step_changed.connect(steps.append)
    model.set_focus(0, 0)
    model.go(10_000)
    model.go(-3)
    model.go(0)                                                  # already there: no event
    assert steps == [len(model.steps) - 1, 0]
    assert model.focus == (0, 0) and not model.focus_picked


def test_click_focuses_then_tells_the_listeners(model):
    model.go(step_index(model, "trainable.scores"))
    got = []
    model.cell_clicked.connect(lambda data, m, r, c: got.append((data.key, m, r, c, model.focus, model.focus_picked)))
    model.click(2, 0, 1, 3)
    assert got == [(("trainable", "attn_scores"), 0, 1, 3, (2, 0), True)]
    model.click(9, 0, 0, 0)                                      # no such matrix: focus only, no cell
    assert len(got) == 1


def test_frames_for_marks_cells_rows_and_columns(model):
    model.go(step_index(model, "trainable.query_2"))            # row 2 of the scores (row slice 1..2)
    queries, keys, scores = model.shown
    marks = (Mark("trainable", "queries", (), (1,), None, "source"),
             Mark("trainable", "keys", (), None, None, "source"),
             Mark("trainable", "attn_scores", (), (1,), (3,), "clicked"),
             Mark("trainable", "attn_scores", (), (4,), (0,), "clicked"))   # a row not on the slice
    assert queries.row_offset == 1 and queries.shape[0] == 1     # the slice shows row 1 as its row 0
    assert frames_for(marks, queries) == [Frame(0, 0, 0, queries.shape[1], 1, "source", ("trainable", "queries"), ())]
    assert frames_for(marks, keys) == [Frame(0, 0, 0, keys.shape[1], keys.shape[0], "source", ("trainable", "keys"), ())]
    assert frames_for(marks, scores) == [Frame(0, 3, 0, 1, 1, "clicked", ("trainable", "attn_scores"), ())]
    assert scores.row_offset == 1


def test_marks_are_set_once_per_change(model):
    fired = []
    model.marks_changed.connect(lambda: fired.append(model.marks))
    mark = Mark("trainable", "keys", (), None, None)
    model.set_marks([mark])
    model.set_marks((mark,))                                     # the same marks: no event
    model.set_marks(())
    assert fired == [(mark,), ()]


def test_event_disconnect_and_a_callback_that_disconnects_itself():
    e = Event("x")
    calls = []

    def once(v):
        calls.append(("once", v))
        e.disconnect(once)
    e.connect(once)
    e.connect(lambda v: calls.append(("always", v)))
    e.emit(1)
    e.emit(2)
    assert calls == [("once", 1), ("always", 1), ("always", 2)] and len(e) == 1
    e.disconnect(once)                                           # not connected: nothing happens
    assert len(e) == 1
