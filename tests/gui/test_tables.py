"""gui/tables.py (Edit inputs): edited embeddings and weights change every step as the core computes;
bad embeddings CSVs to import, and a bad target to export them to, give a message and change nothing."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets
import pytest

from core import build_trace
from core.inputs import Inputs
from tests.core.snapshots import make_input_files, snapshot
from tests.gui.fixtures import (assert_kept, bad_file_target, CSV_ROWS, expected_maps, go_to, no_partials,
                                no_traceback, open_editor, screen, shown_maps, TRACE_TIMEOUT_MS, wait_trace, watched_fifo)


def assert_steps_show(window, qtbot, ref, step_ids=None) -> None:
    """Every (or each given) step's images equal the reference trace's maps."""
    c = window.controller
    for i, step in enumerate(c.steps):
        if step_ids is not None and step.id not in step_ids:
            continue
        c.go(i)
        window.step_view.refresh()
        panels = [p for p in step.panels if p.key in ref or not p.optional]
        for panel, images in zip(panels, shown_maps(window.step_view)):
            for img, exp in zip(images, expected_maps(panel, ref)):
                np.testing.assert_array_equal(img, exp, err_msg=f"{step.id} {panel.key}")


def assert_trace_equal(trace, ref) -> None:
    for item in ref:
        np.testing.assert_array_equal(trace[item.key].numpy(), item.numpy(), err_msg=str(item.key))


Key = QtCore.Qt.Key


def test_editing_an_embedding_changes_every_step_as_the_core_computes(window, qtbot):
    c = window.controller
    go_to(window, qtbot, "trainable.context")
    config = c.trace.config
    before = c.trace["trainable", "context_vecs"].numpy().copy()
    table = open_editor(window).embeddings
    assert table.item(1, 0).text() == "journey" and float(table.item(1, 2).text()) == 0.87
    wait_trace(window, qtbot, lambda: table.item(1, 2).setText("-0.25"))       # journey, in1
    edited = np.array([[0.43, 0.15, 0.89], [0.55, -0.25, 0.66], [0.57, 0.85, 0.64],
                                          [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]])
    ref = build_trace(config, inputs=Inputs(("Your", "journey", "starts", "with", "one", "step"), edited))
    assert c.mode == "custom" and c.trace.config == config
    assert_trace_equal(c.trace, ref)
    assert not np.allclose(c.trace["trainable", "context_vecs"].numpy(), before)
    assert_steps_show(window, qtbot, ref)
    assert float(open_editor(window).embeddings.item(1, 2).text()) == -0.25     # the table shows the edit


def test_editing_a_weight_changes_the_trainable_and_causal_steps(window, qtbot):
    c = window.controller
    go_to(window, qtbot, "trainable.scores")
    config = c.trace.config
    W = c.trace["trainable", "W_key"].numpy().astype(np.float64)
    table = open_editor(window).weights["W_key"]
    wait_trace(window, qtbot, lambda: table.item(2, 1).setText("0.75"))
    W[2, 1] = 0.75
    ref = build_trace(config, weights_override={"W_key": W})
    assert_trace_equal(c.trace, ref)
    assert c.weights.keys() == {"W_key"}
    assert_steps_show(window, qtbot, ref, {"trainable.scores", "trainable.context", "causal.approach_b"})


def test_a_non_numeric_edit_is_refused_and_changes_nothing(window, qtbot):
    c = window.controller
    go_to(window, qtbot, "trainable.scores")
    trace, mode, index = c.trace, c.mode, c.index
    editor = open_editor(window)
    messages = []
    editor.message.connect(messages.append)
    for table, (r, col) in ((editor.embeddings, (2, 1)), (editor.weights["W_query"], (0, 0))):
        old = table.item(r, col).text()
        table.item(r, col).setText("abc")
        assert table.item(r, col).text() == old                       # the old value is back in the cell
        assert "not a number" in editor.note.text() and "'abc'" in editor.note.text()
        assert "not a number" in messages[-1]
    editor.weights["W_value"].item(1, 1).setText("1e9")               # a number the trace would refuse
    assert "outside" in editor.note.text() and editor.weights["W_value"].item(1, 1).text() != "1e9"
    editor.embeddings.item(0, 0).setText("   ")                       # a token needs a name
    assert editor.embeddings.item(0, 0).text() == "Your"
    qtbot.wait(100)
    assert c.trace is trace and c.mode == mode and c.index == index and not c.is_busy()
    assert c.inputs is None and c.weights == {}


def test_add_remove_reset_and_csv_round_trip(window, qtbot, tmp_path):
    c = window.controller
    go_to(window, qtbot, "simplified.scores")
    editor = open_editor(window)
    wait_trace(window, qtbot, lambda: editor.add_token("again"))
    assert c.trace.tokens[-1] == "again" and c.trace["simplified", "attn_scores"].shape == (7, 7)
    assert editor.embeddings.rowCount() == 7
    wait_trace(window, qtbot, lambda: editor.remove_token(0))
    assert c.trace.tokens[0] == "journey" and len(c.trace.tokens) == 6
    path = tmp_path / "x.csv"
    assert "Wrote 6" in editor.export_csv(str(path))
    wait_trace(window, qtbot, editor.reset)
    assert c.trace.tokens[0] == "Your" and c.inputs is None
    wait_trace(window, qtbot, lambda: editor.import_csv(str(path)))
    assert c.trace.tokens == ("journey", "starts", "with", "one", "step", "again")
    np.testing.assert_array_equal(c.trace.inputs.array[-1], [0.0, 0.0, 0.0])


def test_bad_import_is_a_message(window, qtbot, tmp_path):
    c = window.controller
    trace = c.trace
    bad = tmp_path / "bad.csv"
    bad.write_text("token,a,b\nx,1,oops\n")
    editor = open_editor(window)
    with qtbot.waitSignal(editor.imported, timeout=TRACE_TIMEOUT_MS) as blocker:
        editor.import_csv(str(bad))                    # read on a reader thread, refused on the UI thread
    assert "not a number" in blocker.args[0]
    assert "Import failed" in open_editor(window).note.text() and "not a number" in open_editor(window).note.text()
    assert c.trace is trace and not c.is_busy()


def test_large_inputs_are_not_put_in_a_table(window, qtbot, tmp_path):
    c = window.controller
    editor = open_editor(window)
    text = " ".join(f"w{i}" for i in range(400))
    wait_trace(window, qtbot, lambda: c.set_params(embeddings="random", text=text, d_in=64, d_out=4))
    assert "embeddingsTable" in editor.too_large and editor.embeddings.rowCount() == 0
    assert "too large" in editor.embeddings.horizontalHeaderItem(0).text()
    assert editor.weights["W_query"].rowCount() == 64                      # 64 × 4 still fits
    assert "Wrote 400" in editor.export_csv(str(tmp_path / "big.csv"))
    wait_trace(window, qtbot, lambda: editor.add_token("extra"))
    assert len(c.trace.tokens) == 401


def test_edited_inputs_obey_the_token_limit_and_the_memory_guard(window, qtbot, tmp_path, monkeypatch):
    """Edited embeddings (an import of d_in's width) go through the same limits as the settings."""
    from core.config import MAX_TOKENS
    c = window.controller
    editor = open_editor(window)
    trace = c.trace
    big = tmp_path / "big.csv"
    big.write_text("\n".join(f"t{i},0.1,0.2,0.3" for i in range(MAX_TOKENS + 1)) + "\n")
    with qtbot.waitSignal(c.error, timeout=60_000) as blocker:
        editor.import_csv(str(big))
    assert blocker.args[0] == "embeddings" and f"limit is {MAX_TOKENS}" in blocker.args[1]
    assert "Not applied" in editor.note.text()
    qtbot.waitUntil(lambda: not c.is_busy())
    assert c.trace is trace
    import core.memory
    monkeypatch.setattr(core.memory, "available_bytes", lambda device: 10_000)
    with qtbot.waitSignal(c.error, timeout=60_000) as blocker:
        editor.add_token("x")
    assert "reduce the tokens (7)" in blocker.args[1]
    assert c.trace is trace
    assert c.inputs is None and editor.embeddings.rowCount() == 6        # the refused edit is gone


def test_arrow_keys_in_the_inputs_table_do_not_step(window, qtbot):
    go_to(window, qtbot, "trainable.scores")
    c = window.controller
    editor = open_editor(window)
    table = editor.embeddings
    table.setFocus()
    table.setCurrentCell(1, 1)
    qtbot.waitUntil(table.hasFocus)
    index = c.index
    qtbot.keyClick(table, Key.Key_Right)
    qtbot.keyClick(table, Key.Key_Down)
    assert c.index == index
    assert (table.currentRow(), table.currentColumn()) == (2, 2)


IMPORT_ROWS = [r for r in CSV_ROWS if r[0] not in ("width2", "huge_value")]


@pytest.mark.parametrize("name, _field, words", IMPORT_ROWS, ids=[r[0] for r in IMPORT_ROWS])
def test_bad_embeddings_csv_in_edit_inputs_import(good, qtbot, capfd, tmp_path, monkeypatch, name, _field, words):
    """Edit inputs → Import CSV… (the file dialog patched): a message, nothing recomputed."""
    editor = getattr(good, "inputs_editor", None)
    if editor is None:
        pytest.skip("the window has no Edit inputs panel")
    files = make_input_files(tmp_path)
    c, before = good.controller, screen(good)
    messages = []
    editor.message.connect(messages.append)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (files[name], ""))
    busy = []
    c.busy.connect(busy.append)
    with qtbot.waitSignal(editor.imported, timeout=TRACE_TIMEOUT_MS):
        editor.buttons["import"].click()
    assert messages and messages[-1].startswith("Import failed:") and words in messages[-1]
    assert words in editor.note.text()
    assert busy == []                                  # nothing was recomputed
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


def test_embeddings_csv_of_another_width_imports_with_that_width(good, qtbot, tmp_path, monkeypatch):
    """Import is the one place a width ≠ d_in is no error: d_in follows the file."""
    editor = getattr(good, "inputs_editor", None)
    if editor is None:
        pytest.skip("the window has no Edit inputs panel")
    files = make_input_files(tmp_path)
    c = good.controller
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (files["width2"], ""))
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        editor.buttons["import"].click()
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert c.trace.config.d_in == 2 and c.trace.tokens == ("a", "b")
    assert good.params.d_in.value() == 2


@pytest.mark.parametrize("kind", ["folder", "read-only", "disk-full"])
def test_export_embeddings_csv_to_a_bad_target(good, qtbot, capfd, tmp_path, monkeypatch, kind):
    """Edit inputs → Export CSV…: a message, the old file kept, no temporary file left."""
    import core.export
    editor = getattr(good, "inputs_editor", None)
    if editor is None:
        pytest.skip("the window has no Edit inputs panel")
    root, target, before_files = bad_file_target(tmp_path, monkeypatch, kind, "inputs.csv")
    messages = []
    editor.message.connect(messages.append)
    before = screen(good)
    editor.buttons["export"].click()
    words = {"folder": "is a folder; choose a file name", "read-only": "Permission denied",
             "disk-full": "No space left on device"}[kind]
    assert messages and messages[-1].startswith("Export failed:") and words in messages[-1]
    assert snapshot(root) == before_files
    no_partials(tmp_path)
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


def test_a_fifo_as_the_embeddings_csv_never_blocks_the_ui_thread(window, qtbot, tmp_path):
    """The CSV is checked (a regular file of bounded size) and read on a reader thread."""
    editor, c = open_editor(window), window.controller
    trace = c.trace
    with watched_fifo(tmp_path / "x.csv", b"a,1,2,3\n") as fifo:
        with qtbot.waitSignal(editor.imported, timeout=TRACE_TIMEOUT_MS) as blocker:
            editor.import_csv(str(fifo))
            assert editor.note.text() == "Reading x.csv…"     # the UI thread went on at once
    assert "named pipe" in blocker.args[0] and c.trace is trace


def test_only_the_latest_of_two_imports_is_applied(window, qtbot, tmp_path):
    editor, c = open_editor(window), window.controller
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("a,0.1,0.2,0.3\nb,0.4,0.5,0.6\n")
    second.write_text("x,0.7,0.8,0.9\ny,0.1,0.1,0.1\nz,0.2,0.2,0.2\n")
    done = []
    editor.imported.connect(done.append)
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        editor.import_csv(str(first))
        editor.import_csv(str(second))
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert done == [""] and c.trace.tokens == ("x", "y", "z")


def test_token_buttons_work_while_only_the_visible_stage_is_computed(window, qtbot):
    """With the visible stage first, the current step's trace can be missing for a moment
    (controller.trace is None): Add/Remove token use the inputs every trace holds (the soak found
    an AttributeError here)."""
    from gui.view_model import CUSTOM
    c, editor = window.controller, open_editor(window)
    wait_trace(window, qtbot, lambda: c.set_params(embeddings="random", text="a b c", d_in=3))
    full = c.model.traces[CUSTOM]
    partial = build_trace(full.config, only=("multihead",))            # a trace without the step's stage
    go_to(window, qtbot, "simplified.scores")
    c.model.traces = {CUSTOM: partial}
    editor._stale = True                   # as when the editor was hidden: the table is not filled
    assert c.trace is None and c.model.inputs.tokens == ("a", "b", "c")
    wait_trace(window, qtbot, lambda: editor.remove_token())
    assert c.trace.tokens == ("a", "b")
