"""core.train.budget: the training memory guard's estimate against the model and a measured peak,
and the refusal before anything of the run's size is allocated."""
from __future__ import annotations

import sys

import pytest
import torch

from core import cost, memory
from core.train import budget
from core.train.model import AttentionOnlyModel, build_model
from core.train.runner import snapshot_steps, train
from core.train.settings import defaults_for
from tests.core.train.conftest import small

# Measured peak ≤ estimate ≤ ESTIMATE_FACTOR × measured peak: the guard never lets through a run
# it underestimates, and refuses nothing that needs less than half of what it says.
ESTIMATE_FACTOR = 2.0


@pytest.mark.parametrize("settings", [
    small(),
    small("previous_token", vocab_size=50, d_model=24, num_heads=3, num_layers=1),
    defaults_for("induction", seq_len=256, d_model=1024, num_heads=16, num_layers=8, batch_size=1024),
    defaults_for("next_word", text_path="x.txt", vocab_size=5000, seq_len=40, d_model=96, num_layers=3),
], ids=["induction", "previous_token", "largest", "next_word"])
def test_parameter_and_snapshot_counts_are_the_models_and_the_runners(settings):
    with torch.device("meta"):                    # the largest model's 44 M weights: counted, not allocated
        model = AttentionOnlyModel(settings.vocab_size, settings.context_length, settings.d_model,
                                   settings.num_heads, settings.num_layers)
    assert budget.parameter_count(settings) == sum(p.numel() for p in model.parameters())
    assert budget.snapshot_count(settings) == len(snapshot_steps(settings))


def test_parameter_count_of_a_built_model():
    s = small()
    model = build_model(s.vocab_size, s.context_length, s.d_model, s.num_heads, s.num_layers, seed=0)
    assert budget.parameter_count(s) == sum(p.numel() for p in model.parameters())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU peak is read from /proc")
@pytest.mark.parametrize("changes", [
    dict(batch_size=16, seq_len=96, d_model=32, num_heads=4, num_layers=2),              # (b, h, T, T) maps
    dict(task="previous_token", batch_size=128, seq_len=32, d_model=32, num_heads=1, num_layers=1,
         vocab_size=3000),                                                                # (b, T, vocab) logits
], ids=["attention_maps", "logits"])
def test_the_estimate_bounds_the_measured_peak_within_a_factor_of_two(changes):
    """Two sizes whose peaks are dominated by different terms, measured as core.cost measures
    (the process's peak resident set above the start; an upper bound of what torch allocated)."""
    changes = dict(changes)
    task = changes.pop("task", "induction")
    s = defaults_for(task, steps=2, snapshot_every=1, device="cpu", **changes)
    train(small(steps=1))                          # the first run's imports and caches, outside the measure
    peak = cost.peak_bytes(lambda: train(s), "cpu")
    estimate = budget.estimate_train_bytes(s)
    assert peak > 40 * 2**20, peak                 # the run's own memory dominates the process's noise
    assert peak <= estimate <= ESTIMATE_FACTOR * peak, (estimate / 2**20, peak / 2**20)


def test_a_run_over_the_budget_is_refused_before_the_task_or_model_exist(monkeypatch):
    import core.train.runner as runner
    built = []
    monkeypatch.setattr(runner, "make_task", lambda *a, **k: built.append("task"))
    monkeypatch.setattr(runner, "build_model", lambda *a, **k: built.append("model"))
    s = small()
    need = budget.estimate_train_bytes(s)
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 2 * need - 2)   # budget: half
    with pytest.raises(budget.TrainMemoryError) as info:
        train(s)
    assert built == []
    message = str(info.value)
    assert info.value.field == "" and message == info.value.message and "\n" not in message
    assert message.startswith(f"this training needs about {memory._fmt(need)} but the budget is ")
    assert "reduce the batch (8), seq_len (6), heads (2), layers (2) or d_model (16)" in message
    assert budget.check_train_memory(s, available=2 * need) == need     # exactly at the budget: accepted


def test_the_estimate_grows_with_every_size_and_quadratically_with_the_context():
    s = small()
    base = budget.estimate_train_bytes(s)
    for field in ("batch_size", "num_layers", "vocab_size", "d_model", "steps"):
        assert budget.estimate_train_bytes(s.replace(**{field: getattr(s, field) * 2})) > base, field
    # the (b, h, T, T) maps dominate a long context: doubling T about quadruples the estimate
    long = small(seq_len=128, batch_size=64, d_model=8, num_heads=8, num_layers=1)
    ratio = budget.estimate_train_bytes(long.replace(seq_len=256)) / budget.estimate_train_bytes(long)
    assert 3.5 < ratio <= 4.0
