"""The Train window in the main window: View → Train attention…, a snapshot opened in the stepper
as stage 4, a snapshot exported as CSV, and no training thread left when the app closes."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from core.train.runner import train
from core.train.settings import defaults_for
from gui import train_window
from tests.gui.fixtures import TRACE_TIMEOUT_MS, wait_trace

SMALL = dict(vocab_size=16, seq_len=6, d_model=16, num_heads=2, num_layers=2, steps=20, batch_size=8,
             snapshot_every=5, device="cpu")


@pytest.fixture(scope="module")
def run():
    return train(defaults_for("induction", **SMALL))


def test_the_action_opens_one_kept_train_window(window, qtbot):
    act = window.actions["train"]
    assert act.shortcut().toString() == "Ctrl+Shift+T" and act in window.menuBar().actions()[1].menu().actions()
    act.trigger()
    view = window.train_view
    qtbot.waitExposed(view)
    assert view.isWindow() and view.isVisible()
    view.close()
    act.trigger()
    assert window.train_view is view and view.isVisible()       # the same view, with its run


@pytest.mark.parametrize("index, layer", [(1, 0), (4, 1)])
def test_a_snapshot_opened_in_the_stepper_is_stage_4(window, qtbot, run, index, layer):
    c = window.controller
    view = train_window.train_view(window)
    view._adopt(run)
    view.slider.setValue(index)
    view.layer_box.setCurrentIndex(layer)
    wait_trace(window, qtbot, view.stepper_button.click)
    assert c.step.id == "multihead.weights" and c.mode == "custom"
    snap = run.snapshots[index]
    # the stage's masked softmax vs the model's masked_fill + softmax, both float32 (dropout 0): a few ulps
    np.testing.assert_allclose(c.trace["multihead", "attn_weights"].numpy(), snap.attn_weights[layer],
                               atol=1e-5, rtol=0)
    np.testing.assert_array_equal(c.trace["multihead", "W_out"].numpy(), snap.weights["W_out"][layer])
    assert c.trace.inputs.tokens == run.probe_tokens
    assert f"step {snap.step}, layer {layer}" in window.statusBar().currentMessage()
    # a parameter that no longer fits the trained layer drops it (stage 4 draws its weights again)
    wait_trace(window, qtbot, lambda: c.set_params(num_heads=4))
    assert not c.multihead and not np.allclose(c.trace["multihead", "W_out"].numpy(), snap.weights["W_out"][layer])


def test_export_snapshot_writes_every_head_as_csv(qtbot, run, tmp_path):
    from gui.train_view import TrainView
    view = TrainView(defaults_for("induction", **SMALL))
    qtbot.addWidget(view)
    view._adopt(run)
    view.slider.setValue(2)
    assert view.export_button.isEnabled()
    assert view.export_snapshot_to(str(tmp_path / "snap"))
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert manifest["step"] == 10 and len(manifest["tensors"]) == 4
    for t in manifest["tensors"]:
        layer, head = t["index"]
        with open(tmp_path / "snap" / t["file"], newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        assert rows[0][0] == "query\\key" and rows[0][1:] == list(run.probe_tokens)
        values = np.array([[float(v) for v in r[1:]] for r in rows[1:]], dtype=np.float32)
        # 9 significant digits read back as float32: exact
        np.testing.assert_array_equal(values, run.snapshots[2].attn_weights[layer, head])
    # a folder that cannot be written: a message, and nothing half-written
    (tmp_path / "file").write_text("x")
    assert not view.export_snapshot_to(str(tmp_path / "file"))
    assert "is a file" in view.status.text() and (tmp_path / "file").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "snap"]


def test_closing_the_app_while_training_leaves_no_thread(window, qtbot):
    window.actions["train"].trigger()
    view = window.train_view
    view.set_settings(defaults_for("induction", **{**SMALL, "steps": 100_000, "snapshot_every": 1000}))
    view.start()
    qtbot.waitUntil(lambda: view.progress_bar.value() > 2, timeout=TRACE_TIMEOUT_MS)
    window.close()
    assert not view._tasks.busy() and not view.training and not view.isVisible()


def test_a_lesson_saved_with_the_run_reopens_it_without_retraining(window, qtbot, run, tmp_path, monkeypatch):
    from gui.lessons import save_lesson
    from tests.gui.fixtures import open_lesson_and_wait
    c = window.controller
    view = train_window.train_view(window)
    view._adopt(run)
    view.slider.setValue(3)
    view.layer_box.setCurrentIndex(1)
    wait_trace(window, qtbot, view.stepper_button.click)
    expected = c.trace["multihead", "attn_weights"].numpy()
    message = save_lesson(window, str(tmp_path / "trained.json"))
    assert "trained.run.npz" in message and (tmp_path / "trained.run.npz").is_file()
    # a fresh Train view and the book, then the lesson: no training may run
    window.train_view.deleteLater()
    window.train_view = None
    wait_trace(window, qtbot, c.use_book)
    import core.train.runner as runner
    monkeypatch.setattr(runner, "train", lambda *a, **k: pytest.fail("the lesson retrained its run"))
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        assert open_lesson_and_wait(window, qtbot, tmp_path / "trained.json") == ""
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert c.step.id == "multihead.weights"
    np.testing.assert_array_equal(c.trace["multihead", "attn_weights"].numpy(), expected)
    reopened = window.train_view
    assert reopened.run is not None and reopened.current_index() == 3
    assert np.array_equal(reopened.run.snapshots[3].attn_weights, run.snapshots[3].attn_weights)
    # the NPZ gone: one line in the status bar, the lesson (settings, inputs, step) still opens
    (tmp_path / "trained.run.npz").unlink()
    wait_trace(window, qtbot, c.use_book)
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        assert open_lesson_and_wait(window, qtbot, tmp_path / "trained.json") == ""
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    status = window.statusBar().currentMessage()
    assert "trained.run.npz is missing beside the lesson" in status and "\n" not in status
    assert c.mode == "custom" and c.trace.inputs.tokens == run.probe_tokens and not c.multihead
