"""The Train view: a short run, scrubbing, hover, pause/resume, cancel, bad settings, save/open."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PySide6 import QtCore
from PySide6.QtTest import QTest

from core.train.runner import train
from core.train.settings import defaults_for
from gui.train_view import FRAME_MS, TrainView, loss_axis_top

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
    # the probe (T = 12): 2 random tokens, 5 tokens (positions 2-6), the 5 again (7-11)
    assert f"query {tokens[row]!r} (position {row}, in the repeat)" in text
    assert f"key {tokens[col]!r} (position {col}, in the first copy)" in text
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


def test_next_word_starts_with_the_ready_text_and_says_when_there_is_none(qtbot, view):
    from core.train.settings import DEFAULT_TEXT
    view.task_box.setCurrentIndex(view.task_box.findData("next_word"))
    assert view.fields["text_path"].isVisibleTo(view) and view.ready_text_button.isVisibleTo(view)
    assert view.fields["text_path"].text() == DEFAULT_TEXT and view.settings().text_path == DEFAULT_TEXT
    assert "UTF-8" in view.explanation.text() and "agreement.txt" in view.explanation.text()
    view.fields["text_path"].setText("")
    view.start_button.click()
    assert not view.training and view.status.text().startswith("text_path:")
    view.ready_text_button.click()
    assert view.fields["text_path"].text() == DEFAULT_TEXT


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


def test_open_run_reads_the_file_off_the_ui_thread(qtbot, view, tmp_path, monkeypatch):
    """Open run… (the dialog's path): the file is read on a background thread (the reader's
    thread is not the UI's), then the run shows; a bad file is one line and what was shown stays."""
    import threading
    import gui.train_view as tv
    finish(qtbot, view)
    path = tmp_path / "run.npz"
    assert view.save_run_to(str(path))
    threads = []
    real = tv.read_run
    monkeypatch.setattr(tv, "read_run", lambda p, task: (threads.append(threading.current_thread()), real(p, task))[1])
    other = TrainView(defaults_for("previous_token"))
    qtbot.addWidget(other)
    other.open_run_in_background(str(path))
    qtbot.waitUntil(lambda: other.status.text().startswith("opened"), timeout=20_000)
    assert threads and threads[0] is not threading.main_thread()
    assert other.settings() == view.run.settings
    assert np.array_equal(other.images[(1, 1)].image, view.run.snapshots[-1].attn_weights[1, 1])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    other.open_run_in_background(str(bad))
    qtbot.waitUntil(lambda: "cannot read bad.npz" in other.status.text(), timeout=20_000)
    assert other.run is not None and other.settings() == view.run.settings      # what was shown stays


def _replaying(run, progress_steps: int = 0):
    """A train function for the view that replays ``run``: on_start, then (optionally)
    ``progress_steps`` steps' progress and all its snapshots in one burst, as fast as the worker
    can call back; then it waits until ``release`` is set. ``burst_sent`` is set after the burst."""
    burst_sent, release = threading.Event(), threading.Event()

    def train_fn(settings, control, on_snapshot, on_progress, on_start):
        on_start(run)
        for step in range(1, progress_steps + 1):
            on_progress(step, progress_steps, 5.0 - step / progress_steps, float(step), float(-step))
        for snap in run.snapshots:
            on_snapshot(snap)
        burst_sent.set()
        release.wait(TIMEOUT_MS / 1000)
        return run
    return train_fn, burst_sent, release


def test_a_burst_of_snapshots_is_drawn_once_at_the_next_frame(qtbot, monkeypatch):
    run = train(small())                                       # 5 real snapshots
    train_fn, burst_sent, release = _replaying(run)
    view = TrainView(small(), train_fn=train_fn)
    qtbot.addWidget(view)
    view.show()
    drawn = []
    show = view.show_snapshot
    monkeypatch.setattr(view, "show_snapshot", lambda index: (drawn.append(index), show(index)))
    view.start()
    try:
        assert burst_sent.wait(TIMEOUT_MS / 1000)      # the UI thread waits here: the burst queues up
        qtbot.waitUntil(lambda: len(view.snapshots) == len(run.snapshots) and bool(drawn), timeout=TIMEOUT_MS)
        qtbot.wait(3 * FRAME_MS)                        # later frames have nothing new to draw
        last = len(run.snapshots) - 1
        assert drawn == [last] and view.slider.value() == last      # one draw, of the newest snapshot
        for (layer, head), image in view.images.items():
            assert np.array_equal(image.image, run.snapshots[last].attn_weights[layer, head])
    finally:
        release.set()
        qtbot.waitUntil(lambda: not view.training, timeout=TIMEOUT_MS)
        view.shutdown()


def test_progress_arrives_in_batches_with_every_step(qtbot, monkeypatch):
    steps = 2000
    run = train(small())
    train_fn, burst_sent, release = _replaying(run, progress_steps=steps)
    view = TrainView(small(steps=steps), train_fn=train_fn)
    qtbot.addWidget(view)
    batches = []
    view.model.losses_added.connect(lambda batch: batches.append(len(batch)))
    view.start()
    try:
        assert burst_sent.wait(TIMEOUT_MS / 1000)
        # while it trains, the curves hold every step, in order (the frames redraw them)
        def drawn() -> int:
            x = view.curve_second.getData()[0]
            return 0 if x is None else len(x)
        qtbot.waitUntil(lambda: view.progress_bar.value() == steps and drawn() == steps, timeout=TIMEOUT_MS)
        x, y = view.curve_second.getData()
        assert np.array_equal(x, np.arange(1, steps + 1)) and np.array_equal(y, -np.arange(1.0, steps + 1))
        # the worker sent them in far fewer signals than steps (one per PROGRESS_INTERVAL_S:
        # 2000 callbacks take a few ms, ~1 s on a very slow machine)
        assert sum(batches) == steps and len(batches) < steps / 10
    finally:
        release.set()
        qtbot.waitUntil(lambda: not view.training, timeout=TIMEOUT_MS)
        view.shutdown()


def test_the_loss_axis_tops_are_round_and_above_the_loss():
    # exact: multiples of 0.5 are exact in binary floating point
    assert [loss_axis_top(v) for v in (0.0, 0.3, 4.16, 4.5, 4.8, 9.6)] == [0.5, 0.5, 4.5, 5.0, 5.5, 10.5]


def test_the_loss_plot_spans_the_run_and_every_loss(qtbot, view):
    finish(qtbot, view)
    run = view.run
    (x0, x1), (y0, y1) = view.loss_plot.getViewBox().viewRange()
    assert x0 <= 0 and x1 >= run.settings.steps
    highest = max(max(run.history_loss), max(run.history_first), max(run.history_second),
                  max(s.loss for s in run.snapshots))
    assert y0 <= 0 and y1 >= highest


def test_the_guide_stripe_and_the_repeat_marker_are_drawn_where_the_probe_repeats(qtbot, view):
    from core.train.metrics import induction_score, previous_token_score
    finish(qtbot, view)
    run = view.run
    tokens = run.probe_tokens
    T = len(tokens)
    # the probe repeats its last n tokens: found here independently, by comparing the tokens
    n = next(m for m in range(T // 2, 0, -1) if tokens[T - m:] == tokens[T - 2 * m:T - m])
    start = T - n
    assert n == 5 and len(set(tokens[:start])) == start
    expected = {(i + 0.5, i - n + 1 + 0.5) for i in range(start, T)}      # (row, column) centres of the stripe
    for (layer, head), guide in view.guides.items():
        x, y = guide.getData()
        assert set(zip(y.tolist(), x.tolist())) == expected                 # x: key column, y: query row
        assert guide.isVisible()
        lx, ly = view.repeat_lines[(layer, head)].getData()
        assert lx.tolist() == [0, T, start, start] and ly.tolist() == [start, start, 0, T]
    view.guide_box.setChecked(False)
    assert not any(g.isVisible() for g in view.guides.values())
    view.guide_box.setChecked(True)
    assert all(g.isVisible() for g in view.guides.values())
    # each title: layer and head counted from 0, the previous-token and the induction score
    view.slider.setValue(2)
    snap = run.snapshots[2]
    prev, ind = previous_token_score(snap.attn_weights), induction_score(snap.attn_weights, tokens)
    for (layer, head), plot in view._plots.items():
        assert plot.titleLabel.text == (f"layer {layer} · head {head} · prev {prev[layer, head]:.2f} · "
                                        f"ind {ind[layer, head]:.2f}")
    # the score plot: every head's induction score at every snapshot, beside the loss
    for (layer, head), curve in view.score_curves.items():
        x, y = curve.getData()
        assert x.tolist() == [s.step for s in run.snapshots]
        assert np.allclose(y, [induction_score(s.attn_weights, tokens)[layer, head] for s in run.snapshots])
    assert view.score_marker.value() == snap.step
    assert view.score_plot.getPlotItem().getAxis("left").labelText == "induction score"
    assert view.layer_box.itemText(0) == "layer 0"


def test_the_previous_token_task_guides_the_diagonal_below(qtbot):
    v = TrainView(defaults_for("previous_token", vocab_size=16, seq_len=8, d_model=16, num_heads=2, steps=10,
                               batch_size=8, snapshot_every=5, device="cpu"))
    qtbot.addWidget(v)
    finish(qtbot, v)
    x, y = v.guides[(0, 0)].getData()
    assert x.tolist() == [i + 0.5 for i in range(7)] and y.tolist() == [i + 1.5 for i in range(7)]
    assert v.repeat_lines[(0, 0)].getData()[0].size == 0        # no repeat in this probe
    assert v._plots[(0, 1)].titleLabel.text.startswith("layer 0 · head 1 · prev ")
    assert " ind " not in v._plots[(0, 1)].titleLabel.text
    v.shutdown()


def test_the_status_names_the_circuit_when_the_run_is_done(qtbot, view):
    from core.train.metrics import best_heads_text
    finish(qtbot, view)
    last = view.run.snapshots[-1]
    line = best_heads_text(last.attn_weights, view.run.probe_tokens, "induction")
    assert view.status.text().splitlines()[1] == line
