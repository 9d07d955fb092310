"""Shared training runs: each default run is trained once per session and read by several tests."""
import pytest

from core.train.runner import train
from core.train.settings import defaults_for


@pytest.fixture(scope="session")
def induction_run():
    return train(defaults_for("induction", device="cpu"))


@pytest.fixture(scope="session")
def previous_token_run():
    return train(defaults_for("previous_token", device="cpu"))


def small(task: str = "induction", **changes):
    """A few-step run's settings, for tests of the machinery rather than of learning."""
    base = dict(vocab_size=16, seq_len=6, d_model=16, num_heads=2, num_layers=2, steps=12, batch_size=8,
                snapshot_every=4, device="cpu")
    return defaults_for(task, **{**base, **changes})
