"""`python main.py train`: the files it writes, their numbers, bad options and interruptions."""
import json

import numpy as np
import pytest

import main
from core.export import read_csv_slice
from core.train import folder as train_folder
from core.train.runfile import load_run
from core.train.runner import train
from tests.core.snapshots import snapshot as folder_snapshot
from tests.core.train.conftest import small

ARGS = ["--vocab-size", "16", "--seq-len", "6", "--d-model", "16", "--heads", "2", "--batch", "8",
        "--steps", "12", "--snapshot-every", "4", "--device", "cpu", "--seed", "3"]


def test_train_writes_loss_log_snapshots_and_manifest(tmp_path, capsys):
    out = tmp_path / "run"
    assert main.main(["train", "--task", "induction", "--out", str(out), *ARGS]) == 0
    assert "trained induction for 12 steps" in capsys.readouterr().out
    run = train(small(seed=3))                        # the same settings in this process: same numbers
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"] == run.settings.to_dict()
    assert manifest["tokens"] == list(run.probe_tokens)
    assert len(manifest["tensors"]) == len(run.snapshots) * 2 * 2            # snapshots × layers × heads
    for entry in manifest["tensors"]:
        rows, cols, values = read_csv_slice(out / entry["file"])
        snap = next(s for s in run.snapshots if s.step == entry["step"])
        layer, head = entry["index"]
        assert rows == cols == list(run.probe_tokens)
        assert np.array_equal(values, snap.attn_weights[layer, head])   # 9 digits read back to the float32
    steps, cols, losses = read_csv_slice(out / "loss.csv")
    assert cols == ["loss", "loss_first_half", "loss_second_half"] and steps == [str(i) for i in range(1, 13)]
    assert np.array_equal(losses[:, 0], np.array(run.history_loss, np.float32))
    assert np.array_equal(losses[:, 2], np.array(run.history_second, np.float32))
    steps, cols, table = read_csv_slice(out / "snapshots.csv")
    assert steps == ["0", "4", "8", "12"] and cols[4:] == ["score_l0_h0", "score_l0_h1", "score_l1_h0", "score_l1_h1"]
    assert np.array_equal(table[:, 4:], np.stack([s.scores.ravel() for s in run.snapshots]))
    back = load_run(out / "run.npz")
    assert np.array_equal(back.snapshots[-1].attn_weights, run.snapshots[-1].attn_weights)


def test_npy_format(tmp_path):
    out = tmp_path / "run"
    assert main.main(["train", "--out", str(out), "--format", "npy", "--task", "previous_token", *ARGS]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["tensors"][-1]
    assert entry["file"].endswith(".npy") and entry["index"] == [0, 1]          # previous_token: one layer
    assert np.load(out / entry["file"]).shape == (6, 6)


@pytest.mark.parametrize("argv,expected", [
    (["--heads", "3"], "--heads: must divide d_model"),
    (["--lr", "2"], "--lr: must be a number in (0, 1]"),
    (["--steps", "x"], "--steps: 'x' is not a whole number"),
    (["--task", "copy"], "--task: invalid choice: 'copy'"),
    (["--task", "next_word", "--text", " "], "--text: the next-word task needs"),
    (["--device", "tpu"], "--device: must be one of"),
    (["--out", " "], "--out: is empty"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, argv, expected):
    args = ["train", "--out", str(tmp_path / "o"), *argv]
    with pytest.raises(SystemExit) as info:
        main.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert folder_snapshot(tmp_path) == {}


def test_ctrl_c_while_training_writes_nothing(tmp_path, capsys, monkeypatch):
    import core.train.runner as runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "train", interrupted)
    assert main.main(["train", "--out", str(tmp_path / "o"), *ARGS]) == 130
    assert "nothing was written" in capsys.readouterr().err
    assert folder_snapshot(tmp_path) == {}


def test_a_cancelled_or_failed_write_leaves_no_partial_files(tmp_path, monkeypatch):
    run = train(small())
    calls = []

    def cancel_after_three():
        calls.append(1)
        return len(calls) > 3

    from core.export import ExportCancelled
    with pytest.raises(ExportCancelled):
        train_folder.write_run_folder(run, tmp_path / "a" / "b", cancelled=cancel_after_three)
    assert folder_snapshot(tmp_path) == {}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train_folder, "save_run", full_disk)
    with pytest.raises(Exception, match="No space left"):
        train_folder.write_run_folder(run, tmp_path / "c")
    assert folder_snapshot(tmp_path) == {}


def test_a_second_run_into_the_same_folder_replaces_the_first_whole(tmp_path):
    """The run folder goes through the export's switch-over: fewer snapshots leave no stale file,
    the user's own files stay, and no work folder is left behind."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main.main(["train", "--task", "induction", "--out", str(out), *ARGS]) == 0
    first = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    fewer = [a if a != "12" else "4" for a in ARGS]                      # --steps 4: snapshots 0 and 4
    assert main.main(["train", "--task", "induction", "--out", str(out), *fewer]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {e["file"] for e in manifest["tensors"]} | set(manifest["files"]) | {"manifest.json"}
    now = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert now == listed | {"notes.txt"} and len(now) < len(first)
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
