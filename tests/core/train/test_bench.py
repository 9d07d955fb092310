"""The training benchmark's figures are computed from a real run (no timing asserted)."""
import pytest

from core.train.bench import bench_training
from tests.core.train.conftest import small


def test_bench_reports_step_rate_and_the_induction_pattern():
    result = bench_training(small(steps=8, snapshot_every=2), repeats=2)
    assert result["steps_per_s"] > 0 and result["repeats"] == 2
    # 8 steps of a tiny model are far from the pattern: no time is invented for it
    assert result["time_to_induction_s"] is None and result["step_to_induction"] is None


def test_bench_needs_a_two_layer_induction_run():
    with pytest.raises(ValueError, match="induction run"):
        bench_training(small(task="previous_token", num_layers=1))
