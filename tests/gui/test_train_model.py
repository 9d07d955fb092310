"""gui/train_model.py, without Qt: a training's reports, run through train_work into the
TrainModel, give exactly the run's curves and snapshots, in order; cancel and failure end it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.train.runner import TrainControl, train
from core.train.settings import TrainSettingsError, defaults_for
from gui.train_model import TrainModel, train_work
from tests.gui.fixtures import run_python

STEPS = 12


def small(**changes):
    base = dict(vocab_size=16, seq_len=6, d_model=16, num_heads=2, num_layers=1, steps=STEPS, batch_size=8,
                snapshot_every=4, device="cpu")
    return defaults_for("induction", **{**base, **changes})


class FakeTask:
    """What gui.tasks.TaskRunner hands the work, delivering straight into the model (no thread)."""

    def __init__(self, model: TrainModel, cancel_after_snapshots: int | None = None):
        self.model, self.cancel_after = model, cancel_after_snapshots
        self._callbacks = []
        self.is_cancelled = False

    def cancelled(self) -> bool:
        return self.is_cancelled

    def on_cancel(self, fn) -> None:
        self._callbacks.append(fn)

    def progress(self, report) -> None:
        self.model.report(report)

    def partial(self, snap) -> None:
        self.model.add_snapshot(snap)
        if self.cancel_after is not None and len(self.model.snapshots) >= self.cancel_after:
            self.is_cancelled = True
            for fn in self._callbacks:
                fn()


def record(model: TrainModel) -> list:
    events = []
    for name in ("started", "probe_changed", "losses_added", "snapshot_added", "run_changed", "ended"):
        getattr(model, name).connect(lambda *args, name=name: events.append((name, args)))
    return events


def test_the_train_model_imports_no_qt():
    proc = run_python("""
        import sys
        import gui.train_model
        bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph', 'torch')]
        print('QT', bad)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "QT []" in proc.stdout


def test_a_training_fills_the_model_with_the_runs_own_curves_and_snapshots():
    model = TrainModel()
    events = record(model)
    settings, control = small(), TrainControl()
    model.begin(settings, control)
    assert model.training and model.snapshots == [] and model.run is None
    outcome = train_work((settings, train, control), FakeTask(model))
    assert outcome[0] == "finished"
    run = outcome[1]
    model.end(outcome)
    assert not model.training and model.run is run
    # the curves the reports built while it trained equal the run's own history (the same floats)
    names = [n for n, _a in events]
    batches = [a[0] for n, a in events if n == "losses_added"]
    steps = [b[0] for batch in batches for b in batch]
    losses = [b[2] for batch in batches for b in batch]
    assert steps == list(range(1, STEPS + 1))
    np.testing.assert_array_equal(losses, run.history_loss)
    assert [a[0] for n, a in events if n == "snapshot_added"] == list(range(len(run.snapshots)))
    assert names[0] == "started" and names[1] == "probe_changed" and names[-2:] == ["run_changed", "ended"]
    assert model.probe_tokens == tuple(run.probe_tokens)
    assert model.step == STEPS and model.history["step"] == list(range(1, STEPS + 1))
    np.testing.assert_array_equal(model.history["loss"], run.history_loss)
    for got, snap in zip(model.snapshots, run.snapshots):
        assert got.step == snap.step
        np.testing.assert_array_equal(got.attn_weights, snap.attn_weights)
    # the induction halves: both finite for this task
    assert all(math.isfinite(x) for x in model.history["first"] + model.history["second"])


def test_cancel_ends_the_training_keeping_the_snapshots_so_far():
    model = TrainModel()
    settings, control = small(steps=400, snapshot_every=4), TrainControl()
    model.begin(settings, control)
    outcome = train_work((settings, train, control), FakeTask(model, cancel_after_snapshots=2))
    assert outcome == ("cancelled",) and control.cancelled
    events = record(model)
    model.end(outcome)
    assert [n for n, _a in events] == ["ended"]           # nothing adopted: a cancelled run is not saved
    assert model.run is None and not model.training and len(model.snapshots) == 2
    assert model.step < 400


@pytest.mark.parametrize("error, expected", [
    (TrainSettingsError("steps", "too many"), ("failed", "steps", "too many")),
    (RuntimeError("boom"), ("failed", "", "training failed: RuntimeError: boom")),
])
def test_a_failed_training_becomes_one_outcome_line(error, expected):
    def failing(*_args, **_kwargs):
        raise error
    model = TrainModel()
    model.begin(small(), TrainControl())
    assert train_work((small(), failing, TrainControl()), FakeTask(model)) == expected


def test_adopting_a_run_replaces_everything_on_screen():
    run = train(small())
    model = TrainModel()
    model.begin(small(steps=3), TrainControl())
    model.add_losses([(1, 3, 9.0, 9.0, 9.0)])
    events = record(model)
    model.end(("cancelled",))
    model.adopt(run)
    assert [n for n, _a in events] == ["ended", "run_changed"]
    assert model.run is run and model.snapshots == list(run.snapshots) and model.step == len(run.history_loss)
    np.testing.assert_array_equal(model.history["loss"], run.history_loss)
    np.testing.assert_array_equal(model.history["second"], run.history_second)
