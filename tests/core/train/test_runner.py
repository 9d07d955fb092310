"""Runs are reproducible, pausable and cancellable; settings are validated; runs save and reopen."""
import math
import threading

import numpy as np
import pytest
import torch

from core.train.runfile import RunFileError, load_run, save_run
from core.train.runner import TrainCancelled, TrainControl, snapshot_steps, train
from core.train.settings import TrainSettings, TrainSettingsError, defaults_for
from tests.core.snapshots import snapshot as folder_snapshot
from tests.core.train.conftest import small


def _same(a, b) -> None:
    """Bit-identical snapshots. torch.equal/np.array_equal is right here: same CPU, same process,
    same code path and thread count, and every random number comes from the run's seeded generators."""
    assert [s.step for s in a.snapshots] == [s.step for s in b.snapshots]
    assert a.history_loss == b.history_loss
    for sa, sb in zip(a.snapshots, b.snapshots):
        assert np.array_equal(sa.attn_weights, sb.attn_weights)
        assert np.array_equal(sa.layer_inputs, sb.layer_inputs)
        assert all(np.array_equal(sa.weights[k], sb.weights[k]) for k in sa.weights)
        assert (sa.loss, sa.accuracy) == (sb.loss, sb.accuracy)


def test_same_seed_same_snapshots(induction_run):
    again = train(induction_run.settings)
    _same(induction_run, again)
    other = train(small(seed=1))
    assert not np.array_equal(other.snapshots[-1].attn_weights, train(small(seed=2)).snapshots[-1].attn_weights)


def test_global_rng_use_elsewhere_does_not_change_a_run():
    settings = small()
    quiet = train(settings)
    noisy = train(settings, on_progress=lambda *_: torch.rand(100))   # another user of the global RNG
    _same(quiet, noisy)


def test_snapshot_steps_and_contents():
    s = small(steps=10, snapshot_every=4)
    assert snapshot_steps(s) == [0, 4, 8, 10]
    run = train(s)
    assert [x.step for x in run.snapshots] == [0, 4, 8, 10]
    snap = run.snapshots[-1]
    L, h, T, d = s.num_layers, s.num_heads, s.context_length, s.d_model
    assert snap.attn_weights.shape == (L, h, T, T)
    assert np.allclose(snap.attn_weights.sum(-1), 1, atol=1e-6)        # softmax rows (float32 sums)
    assert np.all(np.triu(snap.attn_weights, 1) == 0)                   # causal
    assert len(run.history_loss) == 10 and all(math.isfinite(v) for v in run.history_loss)
    w = run.stage4_weights(3, 1)
    assert set(w) == {"W_query", "W_key", "W_value", "W_out", "b_out", "inputs"}
    assert w["W_query"].shape == (d, d) and w["inputs"].shape == (T, d)
    # the stage-4 weights and inputs reproduce the snapshot's layer-1 attention weights
    from core.train.model import MultiHeadAttention
    layer = MultiHeadAttention(d, d, T, 0.0, h)
    with torch.no_grad():
        for name, lin in (("W_query", layer.W_query), ("W_key", layer.W_key), ("W_value", layer.W_value)):
            lin.weight.copy_(torch.from_numpy(w[name]).T)
        _, weights = layer(torch.from_numpy(w["inputs"])[None], return_weights=True)
    assert np.abs(weights[0].numpy() - snap.attn_weights[1]).max() <= 1e-6  # same ops, batch of 1


def test_cancel_raises_and_pause_resume_changes_nothing():
    settings = small(steps=30)
    reference = train(settings)
    control = TrainControl()

    def cancel_at(step, *_):
        if step == 5:
            control.cancel()

    with pytest.raises(TrainCancelled):
        train(settings, control, on_progress=cancel_at)

    control = TrainControl()
    paused_at = []

    def pause_at(step, *_):
        if step in (3, 17):
            control.pause()
            paused_at.append(step)
            threading.Timer(0.2, control.resume).start()

    run = train(settings, control, on_progress=pause_at)
    assert paused_at == [3, 17]
    _same(reference, run)


def test_cancel_while_paused_ends_the_run():
    control = TrainControl()
    control.pause()
    threading.Timer(0.2, control.cancel).start()
    with pytest.raises(TrainCancelled):
        train(small(), control)


@pytest.mark.parametrize("field,value", [
    ("task", "copy"), ("vocab_size", 1), ("seq_len", 0), ("d_model", 0), ("num_heads", 3), ("num_layers", 0),
    ("lr", 0.0), ("lr", math.nan), ("lr", "1e-3"), ("steps", 0), ("batch_size", 2.5), ("seed", -1),
    ("device", "tpu"), ("snapshot_every", 0), ("steps", 10**6)])
def test_bad_settings_name_their_field(field, value):
    with pytest.raises(TrainSettingsError) as info:
        TrainSettings(**{field: value})
    assert info.value.field == field
    assert "\n" not in str(info.value)


def test_next_word_needs_a_readable_utf8_text(tmp_path):
    with pytest.raises(TrainSettingsError, match="text_path"):
        defaults_for("next_word", text_path=" ")          # the ready text is the default; none is refused
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 ".encode("latin-1") * 200)
    with pytest.raises(TrainSettingsError, match="not UTF-8"):
        train(defaults_for("next_word", text_path=str(bad), device="cpu"))
    short = tmp_path / "short.txt"
    short.write_text("too few words here.")
    with pytest.raises(TrainSettingsError, match="words"):
        train(defaults_for("next_word", text_path=str(short), device="cpu"))
    with pytest.raises(TrainSettingsError, match="does not exist"):
        train(defaults_for("next_word", text_path=str(tmp_path / "missing.txt"), device="cpu"))


def test_next_word_trains_on_a_text(tmp_path):
    from core.train.tasks import make_task, tokenize_words
    assert tokenize_words("He said: “Don't go.”") == ["he", "said", ":", "“", "don't", "go", ".", "”"]
    text = tmp_path / "story.txt"
    sentences = ["the cat sat on the mat .", "a dog ran to the cat .", "the mat was red ."]
    text.write_text(" ".join(sentences * 60), encoding="utf-8")
    s = defaults_for("next_word", text_path=str(text), device="cpu", vocab_size=20, seq_len=12, d_model=32,
                     steps=60, snapshot_every=20)
    task = make_task(s)
    assert task.token_names[0] == "<unk>" and task.token_names[1] == "the"     # most frequent first
    assert task.probe_tokens == tuple(tokenize_words(text.read_text())[:12])
    run = train(s)
    assert run.snapshots[-1].loss < 0.5 * run.snapshots[0].loss                # a repetitive text is easy


def test_save_and_open_a_run(tmp_path, induction_run):
    path = save_run(induction_run, tmp_path / "run.npz")
    assert folder_snapshot(tmp_path).keys() == {"run.npz"}                     # no temporary file left
    back = load_run(path)
    assert back.settings == induction_run.settings
    assert back.probe_tokens == induction_run.probe_tokens
    _same(induction_run, back)
    assert np.array_equal(back.snapshots[5].scores, induction_run.snapshots[5].scores)


def test_bad_run_files_are_refused_in_one_line(tmp_path, induction_run):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(RunFileError) as info:
        load_run(junk)
    assert "\n" not in str(info.value)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(RunFileError, match="not a training run"):
        load_run(other)
    from core.train.runfile import run_arrays
    arrays = run_arrays(induction_run)
    arrays["attn_weights"] = arrays["attn_weights"][:, :, :, :3]
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(RunFileError, match="attn_weights has shape"):
        load_run(tmp_path / "cut.npz")


def test_a_failed_save_leaves_the_old_file(tmp_path, induction_run, monkeypatch):
    target = tmp_path / "run.npz"
    target.write_bytes(b"older run")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(RunFileError, match="No space left"):
        save_run(induction_run, target)
    assert folder_snapshot(tmp_path) == {"run.npz": b"older run"}
