"""core.train.folder's run folders and issue 19: only files this app wrote are ever replaced."""
import json

import pytest

import main
from core.export import ExportError
from core.train.folder import write_run_folder, write_snapshot_folder
from core.train.runner import train
from tests.core.snapshots import hashes, users_files
from tests.core.train.conftest import small

ARGS = ["--vocab-size", "16", "--seq-len", "6", "--d-model", "16", "--heads", "2", "--batch", "8",
        "--steps", "4", "--snapshot-every", "4", "--device", "cpu", "--seed", "3"]


@pytest.fixture(scope="module")
def run():
    return train(small(steps=4, snapshot_every=4))


def test_train_into_a_folder_with_the_users_own_manifest_exits_2_and_deletes_nothing(tmp_path, capsys):
    """Cause 1: `train --out` with the user's manifest.json listing data.csv and figure.npy deleted
    them. Now: exit 2, one line, every file byte-identical."""
    folder = tmp_path / "run"
    users_files(folder)
    before = hashes(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main.main(["train", "--task", "induction", "--out", str(folder), *ARGS])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out: " in err and "did not write; nothing was changed" in err
    assert hashes(tmp_path) == before


def test_a_snapshot_into_a_folder_with_the_users_own_manifest_is_refused(run, tmp_path):
    """The Train view's "Export snapshot as CSV…" goes the same way: one line, nothing changed."""
    folder = tmp_path / "snap"
    users_files(folder)
    before = hashes(tmp_path)
    with pytest.raises(ExportError, match="did not write; nothing was changed") as info:
        write_snapshot_folder(run, 0, folder)
    assert "\n" not in str(info.value)
    assert hashes(tmp_path) == before


def test_a_run_folder_replaces_the_runs_files_and_keeps_the_users(run, tmp_path):
    """A run written again into its folder replaces exactly the files its manifest stamped; a
    user's file beside them is byte-identical afterwards."""
    folder = tmp_path / "run"
    write_run_folder(run, folder)
    owner = json.loads((folder / "manifest.json").read_text())["written_by"]
    assert owner["name"] == "attention-stepper-export" and "run.npz" in owner["files"]
    (folder / "my notes.txt").write_text("mine\n")
    mine = hashes(folder)["my notes.txt"]
    write_snapshot_folder(run, 1, folder)                      # another kind of this app's export
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert files == {"manifest.json", "my notes.txt", "attn_weights_l0_h0.csv", "attn_weights_l0_h1.csv",
                     "attn_weights_l1_h0.csv", "attn_weights_l1_h1.csv"}
    assert hashes(folder)["my notes.txt"] == mine


def test_a_run_folder_of_the_previous_version_is_replaced(run, tmp_path):
    """A run folder written before the stamp ("version": 1, "kind": "train", that version's file
    names) is recognised as this app's and replaced whole."""
    folder = tmp_path / "run"
    write_run_folder(run, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["written_by"]                                 # as the previous version wrote it
    (folder / "manifest.json").write_text(json.dumps(manifest))
    old = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    write_snapshot_folder(run, 0, folder)
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"run.npz", "loss.csv", "snapshots.csv"} <= old
    assert files == {"manifest.json", *(f"attn_weights_l{l}_h{h}.csv" for l in range(2) for h in range(2))}
    assert not (folder / "attn_weights").exists()            # its emptied folders went too
