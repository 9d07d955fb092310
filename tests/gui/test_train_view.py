"""The Train view: a short run, scrubbing, hover, pause/resume, cancel, bad settings, save/open."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6 import QtCore
from PySide6.QtTest import QTest

from core.train.settings import defaults_for
from gui.train_view import TrainView

TIMEOUT_MS = 60_000


def small(**changes):
    base = dict(vocab_size=16, seq_len=6, d_model=16, num_heads=2, num_layers=2, steps=20, batch_size=8,
                snapshot_every=5, device="cpu")
    return defaults_for("induction", **{**base, **changes})


@pytest.fixture
def view(qtbot):
    v = TrainView(small())
    qtbot.addWidget(v)
    v.resize(1366, 768)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.shutdown()


def finish(qtbot, view):
    view.start_button.click()
    qtbot.waitUntil(lambda: not view.training, timeout=TIMEOUT_MS)
    assert view.run is not None, view.status.text()


def test_a_short_run_then_scrubbing_shows_each_snapshots_numbers(qtbot, view):
    finish(qtbot, view)
    run = view.run
    assert [s.step for s in run.snapshots] == [0, 5, 10, 15, 20]
    assert view.slider.maximum() == 4 and view.slider.value() == 4
    assert view.save_button.isEnabled() and view.play_button.isEnabled()
    for index in (1, 3, 0):
        view.slider.setValue(index)
        snap = run.snapshots[index]
        for (layer, head), image in view.images.items():
            assert np.array_equal(image.image, snap.attn_weights[layer, head])
        assert view.marker.value() == snap.step
        assert f"step {snap.step} " in view.step_label.text()
    x, y = view.curve_second.getData()
    assert np.array_equal(x, np.arange(1, 21)) and np.array_equal(y, np.array(run.history_second))


def test_hover_names_query_key_and_value(qtbot, view):
    finish(qtbot, view)
    view.slider.setValue(2)
    image = view.images[(1, 0)]
    row, col = 9, 4
    scene = image.mapToScene(QtCore.QPointF(col + 0.5, row + 0.5))
    QTest.mouseMove(view.maps.viewport(), view.maps.mapFromScene(scene))
    value = float(view.run.snapshots[2].attn_weights[1, 0, row, col])
    tokens = view.run.probe_tokens
    qtbot.waitUntil(lambda: "layer 1 · head 0" in view.hover_label.text(), timeout=5000)
    text = view.hover_label.text()
    assert f"query {tokens[row]!r} (position {row})" in text and f"key {tokens[col]!r} (position {col})" in text
    assert f"{value:.4f}" in text


def test_pause_resume_and_cancel_keep_the_ui_responsive(qtbot, view):
    view.fields["steps"].setValue(100_000)
    view.fields["snapshot_every"].setValue(1000)
    gaps = []
    last = [time.perf_counter()]

    def beat():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    heart = QtCore.QTimer(interval=5)
    heart.timeout.connect(beat)
    heart.start()
    view.start_button.click()
    qtbot.waitUntil(lambda: view.progress_bar.value() >= 20, timeout=TIMEOUT_MS)
    view.pause_button.click()
    assert view.pause_button.text() == "Resume"
    qtbot.wait(300)                                   # the step in flight may still finish
    paused_at = view.progress_bar.value()
    qtbot.wait(300)
    assert view.progress_bar.value() == paused_at
    view.pause_button.click()
    qtbot.waitUntil(lambda: view.progress_bar.value() > paused_at, timeout=TIMEOUT_MS)
    view.cancel_button.click()
    qtbot.waitUntil(lambda: not view.training, timeout=TIMEOUT_MS)
    heart.stop()
    assert "cancelled at step" in view.status.text()
    assert view.run is None and not view.save_button.isEnabled()
    assert view.start_button.isEnabled() and view.slider.isEnabled()
    view.slider.setValue(0)                           # the snapshots received so far still scrub
    assert np.array_equal(view.images[(0, 0)].image, view.snapshots[0].attn_weights[0, 0])
    # The UI thread kept beating while training. The target is 50 ms; a loaded CI machine
    # (2 cores shared with other jobs) can delay any timer by scheduling alone, so the test
    # only catches a UI that waits on the training (seconds); the benchmark measures the 50 ms.
    assert max(gaps[1:]) < 1.0


def test_bad_settings_are_refused_with_the_field(qtbot, view):
    view.fields["num_heads"].setValue(3)
    view.start_button.click()
    assert not view.training
    assert view.status.text().startswith("num_heads: must divide d_model (16)")
    view.fields["num_heads"].setValue(2)
    view.fields["seed"].setText("abc")
    view.start_button.click()
    assert not view.training and view.status.text().startswith("seed: 'abc' is not a whole number")


def test_next_word_without_a_text_says_so(qtbot, view):
    view.task_box.setCurrentIndex(view.task_box.findData("next_word"))
    assert view.fields["text_path"].isVisibleTo(view)
    assert "UTF-8" in view.explanation.text()
    view.start_button.click()
    assert not view.training and view.status.text().startswith("text_path:")


def test_save_and_open_a_run(qtbot, view, tmp_path):
    finish(qtbot, view)
    path = tmp_path / "run.npz"
    assert view.save_run_to(str(path))
    other = TrainView(defaults_for("previous_token"))
    qtbot.addWidget(other)
    assert other.open_run_from(str(path))
    assert other.settings() == view.run.settings
    other.slider.setValue(2)
    assert np.array_equal(other.images[(1, 1)].image, view.run.snapshots[2].attn_weights[1, 1])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    assert not other.open_run_from(str(bad))
    assert "cannot read bad.npz" in other.status.text()
    assert other.slider.value() == 2 and other.run is not None       # what was shown stays
