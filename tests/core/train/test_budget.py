"""core.train.budget: the training memory guard's estimate against the model and a measured peak,
and the refusal before anything of the run's size is allocated."""
from __future__ import annotations

import pytest
import torch

from core import memory
from core.train import budget
from core.train.model import AttentionOnlyModel, build_model
from core.train.runner import snapshot_steps, train
from core.train.settings import defaults_for
from tests.core.train.conftest import small

# Measured peak ≤ estimate ≤ ESTIMATE_FACTOR × measured peak: the estimate never falls short of
# what torch allocates, and refuses nothing that needs less than half of what it says. (The
# process's resident peak is higher than torch's, by malloc's slack and the snapshots' numpy
# copies: the estimate is 0.8-1.4 × that, and the guard lets a run take only half the free memory.)
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


def torch_peak_bytes(fn) -> int:
    """The most bytes torch's CPU allocator held at once while ``fn`` ran, read off the profiler's
    allocation events in time order (exact and independent of the process's other memory)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()          # + allocated, − freed
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize("changes", [
    dict(batch_size=16, seq_len=96, d_model=32, num_heads=4, num_layers=2),              # (b, h, T, T) maps
    dict(task="previous_token", batch_size=128, seq_len=32, d_model=32, num_heads=1, num_layers=1,
         vocab_size=3000),                                                                # (b, T, vocab) logits
    dict(batch_size=1, seq_len=4, d_model=512, num_heads=4, num_layers=2, vocab_size=2000),  # weights, Adam
], ids=["attention_maps", "logits", "weights"])
def test_the_estimate_bounds_the_measured_peak_within_a_factor_of_two(changes):
    """Three sizes whose peaks are dominated by different terms: the peak torch allocated during a
    two-step run (model, Adam, forward, backward, snapshots) ≤ the estimate ≤ twice that peak."""
    changes = dict(changes)
    task = changes.pop("task", "induction")
    s = defaults_for(task, steps=2, snapshot_every=1, device="cpu", **changes)
    peak = torch_peak_bytes(lambda: train(s))
    estimate = budget.estimate_train_bytes(s)
    assert peak > 10 * 2**20, peak                 # the run's own tensors, not the profiler's noise
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
