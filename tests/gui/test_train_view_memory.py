"""The Train view refuses a run too big for memory with core's one line, before it changes anything
(issue 19, cause 6: the largest sizes ended in "RuntimeError: can't allocate memory")."""
from __future__ import annotations

import numpy as np
import pytest

from core import memory
from core.train.budget import check_train_memory
from core.train.settings import defaults_for
from gui.train_view import TrainView

TIMEOUT_MS = 60_000
LARGEST = dict(seq_len=256, d_model=1024, num_heads=16, num_layers=8, batch_size=1024)


@pytest.fixture
def view(qtbot):
    v = TrainView(defaults_for("induction", vocab_size=16, seq_len=6, d_model=16, num_heads=2, num_layers=2,
                               steps=10, batch_size=8, snapshot_every=5, device="cpu"))
    qtbot.addWidget(v)
    v.resize(1366, 768)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.shutdown()


def test_the_largest_sizes_are_refused_with_the_guards_line_and_the_last_run_stays(qtbot, view, monkeypatch):
    view.start_button.click()
    qtbot.waitUntil(lambda: not view.training, timeout=TIMEOUT_MS)
    run, shown = view.run, {key: image.image.copy() for key, image in view.images.items()}
    assert run is not None and view.slider.value() == len(run.snapshots) - 1

    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 16 * 2**30)
    started = []
    view._train_fn = lambda *args, **kwargs: started.append(args)   # the worker must never be reached
    for name, value in LARGEST.items():
        view.fields[name].setValue(value)
    expected = None
    try:
        check_train_memory(view.settings())
    except Exception as exc:
        expected = str(exc)
    assert expected and expected.startswith("this training needs about ") and "the budget is 8.0 GiB" in expected
    view.start_button.click()
    assert not view.training and started == []
    assert view.status.text() == expected                     # core's message alone, no field prefix
    assert view.run is run and view.slider.value() == len(run.snapshots) - 1
    assert set(view.images) == set(shown)
    assert all(np.array_equal(view.images[key].image, image) for key, image in shown.items())
