"""Exports that survive any kill, on any filesystem (issue 10).

An export is stopped by kill -9, SIGTERM or SIGINT right before each filesystem step it takes
(writing, the journaled switch-over, the clean-up: tests/core/export_child.py). After each, the
folder must hold exactly one complete set, old or new (manifest.json listing exactly the export
files beside it, each with that set's bytes), the user's own files untouched; only a kill -9
during the switch-over may leave no manifest.json at all, with a journal that the next export's
sweep completes. The next export then sweeps whatever was left, says so in one line, and leaves
its own set and nothing hidden. Also: staging never leaves the target folder (a mounted disk's
root inside a read-only parent, a symlink to another filesystem), and batch 2 then batch 1
leaves no stale file.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from core import AttentionConfig, build_trace
from core.export import count_slices, export_trace
from core.safe_folder import JOURNAL, WORK_PREFIX, NotOurs, replace_export, sweep
from tests.core.export_child import NEW, OLD, write_set
from tests.core.snapshots import hashes, snapshot

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs POSIX signals and fork")

ROOT = Path(__file__).resolve().parents[2]
USER_FILES = {"notes.txt": b"my notes\n", "causal/mine.txt": b"keep me\n", "trainable/drafts/idea.md": b"x\n"}
CHILD_TIMEOUT_S = 60


def make_target(folder: Path) -> Path:
    """A folder with the user's own files and the "old" export (batch 2: more files than "new")."""
    for rel, data in USER_FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    replace_export(folder, write_set("old", OLD))
    return folder


def run_child(mode: str, root: Path, points: list[int]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.core.export_child", mode, str(root),
                             *map(str, points)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def results(proc: subprocess.Popen) -> tuple[list[dict], str]:
    out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


def visible(folder: Path) -> dict[str, bytes | None]:
    return {rel: v for rel, v in snapshot(folder).items() if not rel.startswith(WORK_PREFIX)}


def work_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(WORK_PREFIX))


def which_set(folder: Path) -> str:
    """'old' or 'new' when the folder holds exactly that complete set plus the user's files."""
    seen = visible(folder)
    for rel, data in USER_FILES.items():
        assert seen.get(rel) == data, f"the user's {rel} was touched"
    manifest = json.loads(seen.pop("manifest.json"))
    tag, listed = manifest["tag"], [t["file"] for t in manifest["tensors"]]
    assert listed == {"old": OLD, "new": NEW, "third": OLD}[tag]
    files = {rel for rel, v in seen.items() if v is not None and rel not in USER_FILES}
    assert files == set(listed), f"{tag}: files beside the manifest differ from its list"
    for rel in listed:
        assert seen[rel] == f"{tag},{rel}\n".encode(), f"{rel} is not from the {tag} set"
    folders = {rel for rel, v in seen.items() if v is None}
    needed = {str(p) for rel in [*listed, *USER_FILES] for p in Path(rel).parents if str(p) != "."}
    assert folders == needed, "a folder was left behind or removed"
    return tag


def export_length(root: Path) -> int:
    make_target(root / "n0" / "target")
    (line,), _ = results(run_child("none", root, [0]))
    assert line["result"] == "complete" and which_set(root / "n0" / "target") == "new"
    return line["steps"]


def follow_up(folder: Path, leftovers: bool) -> None:
    """The next export sweeps (one line when there was something) and leaves its own set only."""
    notes: list[str] = []
    replace_export(folder, write_set("third", OLD), note=notes.append)
    assert len(notes) == (1 if leftovers else 0), notes
    if leftovers:
        assert notes[0].startswith("swept 1 leftover of an interrupted export")
    assert work_folders(folder) == []
    assert which_set(folder) == "third"


@pytest.fixture
def scratch(tmp_path):
    """A folder on /dev/shm where there is one: the kill points are the same on any disk, and a
    disk's fsync waits (~4 per export, 150 exports a test) would make the test slow on a busy machine."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="attention-stepper-test-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def steps(scratch) -> int:
    return export_length(scratch / "length")


def test_every_kill_9_leaves_one_complete_set_and_the_next_export_sweeps(steps, scratch):
    tmp_path = scratch
    points = list(range(1, steps + 1))
    for n in points:
        make_target(tmp_path / f"n{n}" / "target")
    lines, err = results(run_child("kill9", tmp_path, points))
    assert err == "" and lines == [{"n": n, "result": "killed"} for n in points]
    outcomes = {"old": 0, "new": 0, "mid-switch": 0}
    for n in points:
        folder = tmp_path / f"n{n}" / "target"
        work = work_folders(folder)
        assert len(work) <= 1
        if not (folder / "manifest.json").exists():
            # killed mid-switch: no manifest describes the mixed files; the journal says what to finish
            assert work and (work[0] / JOURNAL).exists(), f"step {n}: no manifest and no journal"
            outcomes["mid-switch"] += 1
            assert len(sweep(folder)) == 1
            assert which_set(folder) in ("old", "new")
            work = []
        else:
            outcomes[which_set(folder)] += 1
        follow_up(folder, leftovers=bool(work))
    assert all(outcomes.values()), outcomes   # the points cover writing, the switch-over and after


@pytest.mark.parametrize("mode", ["term", "int"])
def test_sigterm_and_ctrl_c_at_every_step_leave_the_old_set_and_no_debris(mode, steps, scratch):
    tmp_path = scratch
    points = list(range(1, steps + 1))
    for n in points:
        make_target(tmp_path / f"n{n}" / "target")
    lines, err = results(run_child(mode, tmp_path, points))
    assert err == "" and [line["n"] for line in lines] == points
    for line in lines:
        folder = tmp_path / f"n{line['n']}" / "target"
        assert work_folders(folder) == [], f"step {line['n']}: debris left"
        got = which_set(folder)
        if line["result"] == "interrupted":
            assert got == "old", f"step {line['n']}: 'nothing was written' but the folder changed"
        else:  # the signal came after the last file was in place: written, and said so
            assert line["result"] == "interrupted after completing" and got == "new"
        follow_up(folder, leftovers=False)
    assert {line["result"] for line in lines} == {"interrupted", "interrupted after completing"}


def test_concurrent_exports_into_one_folder_leave_one_complete_set(tmp_path):
    """B runs its whole export while A is writing: B's sweeps leave A's (live, locked) work folder
    alone, A then replaces B's set as a whole."""
    folder = make_target(tmp_path / "target")
    a_writing, b_done = threading.Event(), threading.Event()
    writer = write_set("third", OLD)

    def slow_writer(path: Path) -> list[str]:
        a_writing.set()
        assert b_done.wait(CHILD_TIMEOUT_S)
        return writer(path)

    a = threading.Thread(target=replace_export, args=(folder, slow_writer))
    a.start()
    assert a_writing.wait(CHILD_TIMEOUT_S)
    notes: list[str] = []
    replace_export(folder, write_set("new", NEW), note=notes.append)
    assert notes == [] and which_set(folder) == "new" and len(work_folders(folder)) == 1   # A's, untouched
    b_done.set()
    a.join(CHILD_TIMEOUT_S)
    assert which_set(folder) == "third" and work_folders(folder) == []


# ----------------------------------------------------------------------------- only this app's files (issue 19)

USERS_DATA = {"data.csv": b"year,value\n2024,3.5\n", "figure.npy": b"\x93NUMPY my figure", "thesis.tex": b"years of work\n"}


def users_folder(tmp_path: Path, manifest: bytes | None) -> Path:
    folder = tmp_path / "target"
    folder.mkdir()
    for rel, data in USERS_DATA.items():
        (folder / rel).write_bytes(data)
    if manifest is not None:
        (folder / "manifest.json").write_bytes(manifest)
    (tmp_path / "x.csv").write_text("outside\n")
    return folder


FOREIGN_MANIFESTS = {
    "users-files-list": json.dumps({"files": ["data.csv", "figure.npy"]}).encode(),
    "tensors-list": json.dumps({"tensors": [{"file": "data.csv"}, {"file": "../x.csv"}]}).encode(),
    "forged-name": json.dumps({"written_by": {"name": "something-else", "version": 2, "id": "1",
                                              "files": ["data.csv"]}}).encode(),
    "not-json": b"\xff\xfe not json",
    "a-list": b"[\"data.csv\"]",
}


@pytest.mark.parametrize("manifest", FOREIGN_MANIFESTS.values(), ids=FOREIGN_MANIFESTS.keys())
def test_a_manifest_not_written_by_this_app_is_refused_and_nothing_changes(manifest, tmp_path):
    """Cause 1: the user's own manifest.json listing their files got them deleted. Now the export
    is refused before anything is written, and every file is byte-identical afterwards."""
    folder = users_folder(tmp_path, manifest)
    before = hashes(tmp_path)
    with pytest.raises(NotOurs, match="holds a manifest.json that this app did not write; nothing was changed"):
        replace_export(folder, write_set("new", NEW))
    assert hashes(tmp_path) == before


def test_a_symlinked_manifest_is_refused_and_nothing_changes(tmp_path):
    folder = users_folder(tmp_path, None)
    (tmp_path / "elsewhere.json").write_text(json.dumps({"files": ["data.csv"]}))
    (folder / "manifest.json").symlink_to(tmp_path / "elsewhere.json")
    before = hashes(tmp_path)
    with pytest.raises(NotOurs, match="did not write"):
        replace_export(folder, write_set("new", NEW))
    assert hashes(tmp_path) == before


def stamped(files: list[str]) -> bytes:
    """A manifest as this app stamps it, listing ``files``."""
    return json.dumps({"tag": "old", "written_by": {"name": "attention-stepper-export", "version": 2,
                                                   "id": "0" * 32, "files": files}}).encode()


@pytest.mark.parametrize("entry", ["../x.csv", "ABSOLUTE", "link/x.csv", "causal/../../x.csv", "data.csv/"],
                         ids=["dot-dot", "absolute", "symlink-escaping", "dot-dot-inside", "trailing-slash"])
def test_a_manifest_listing_a_path_outside_the_folder_is_refused(entry, tmp_path):
    """Even a stamped manifest may only name files inside the folder: one that lists ``../x``, an
    absolute path or a path through a symlink out of the folder is refused, nothing changed."""
    folder = users_folder(tmp_path, None)
    (folder / "link").symlink_to(tmp_path)
    entry = str(tmp_path / "x.csv") if entry == "ABSOLUTE" else entry
    (folder / "manifest.json").write_bytes(stamped(["data.csv", entry] if entry != "data.csv/" else [entry]))
    before = hashes(tmp_path)
    with pytest.raises(NotOurs, match="which is not a file of an export inside"):
        replace_export(folder, write_set("new", NEW))
    assert hashes(tmp_path) == before


def test_a_users_file_where_the_export_writes_is_refused(tmp_path):
    """No manifest.json, but the user's own file sits where the export writes one: refused (it
    used to be replaced and deleted), nothing changed."""
    folder = users_folder(tmp_path, None)
    (folder / "causal").mkdir()
    (folder / NEW[0]).write_text("my own attention weights\n")
    before = hashes(tmp_path)
    with pytest.raises(NotOurs, match=r"attn_weights_b0.csv is not a file of an earlier export of this app"):
        replace_export(folder, write_set("new", NEW))
    assert hashes(tmp_path) == before


def test_only_the_files_a_stamped_manifest_lists_are_replaced(tmp_path):
    """This app's own manifest (stamped by replace_export, with the export's id) gets its files
    replaced; the user's files beside it are byte-identical afterwards."""
    folder = users_folder(tmp_path, None)
    replace_export(folder, write_set("old", OLD))
    owner = json.loads((folder / "manifest.json").read_text())["written_by"]
    assert owner["name"] == "attention-stepper-export" and owner["version"] == 2 and owner["files"] == OLD
    user = {rel: h for rel, h in hashes(tmp_path).items() if rel.startswith("x.csv") or
            rel.removeprefix("target/") in USERS_DATA}
    replace_export(folder, write_set("new", NEW))
    after = hashes(tmp_path)
    assert {rel: after.get(rel) for rel in user} == user
    again = json.loads((folder / "manifest.json").read_text())["written_by"]
    assert again["files"] == NEW and again["id"] != owner["id"]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == \
        sorted([*NEW, "manifest.json", *USERS_DATA])


def legacy_export_manifest(files: list[str]) -> dict:
    """What the export wrote before the stamp (manifest version 1)."""
    return {"version": 1, "config": {"text": "x"}, "device": "cpu", "tokens": ["x"], "format": "csv",
            "tensors": [{"stage": f.split("/")[0], "name": f.split("/")[1].split("_")[0].removesuffix(".csv"),
                         "index": [], "shape": [1], "file": f} for f in files], "notes": []}


def test_an_export_of_the_previous_version_is_replaced(tmp_path):
    """A manifest of the version before the stamp, with that version's layout and file names, is
    still this app's: the next export replaces its files and keeps the user's."""
    folder = users_folder(tmp_path, None)
    old = ["causal/attn_weights_b0.csv", "causal/attn_weights_b1.csv", "simplified/inputs.csv"]
    for rel in old:
        (folder / rel).parent.mkdir(exist_ok=True)
        (folder / rel).write_text("an older export\n")
    (folder / "manifest.json").write_text(json.dumps(legacy_export_manifest(old)))
    replace_export(folder, write_set("new", NEW))
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == \
        sorted([*NEW, "manifest.json", *USERS_DATA])
    assert all((folder / rel).read_bytes() == data for rel, data in USERS_DATA.items())


def test_a_previous_version_manifest_naming_the_users_files_is_refused(tmp_path):
    """The previous version's layout, but a listed name that version never wrote (data.csv at the
    top): not this app's, refused, nothing changed."""
    folder = users_folder(tmp_path, None)
    manifest = legacy_export_manifest(["causal/attn_weights_b0.csv"])
    manifest["tensors"].append({"stage": "causal", "name": "mask", "file": "data.csv"})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    before = hashes(tmp_path)
    with pytest.raises(NotOurs, match="did not write"):
        replace_export(folder, write_set("new", NEW))
    assert hashes(tmp_path) == before


def dead_switch(folder: Path, journal: dict, new_manifest: bytes) -> Path:
    """A work folder as an export killed mid-switch leaves it: the user's data.csv already
    retired into old/, the new set still staged."""
    work = folder / (WORK_PREFIX + "dead")
    (work / "old").mkdir(parents=True)
    (work / "new" / "causal").mkdir(parents=True)
    os.replace(folder / "data.csv", work / "old" / "data.csv")
    (work / "new" / "causal" / "attn_weights_b0.csv").write_text("new\n")
    (work / "new" / "manifest.json").write_bytes(new_manifest)
    (work / JOURNAL).write_text(json.dumps(journal))
    return work


def test_a_journal_of_the_previous_version_is_undone_so_the_users_files_come_back(tmp_path):
    """The version before the stamp retired whatever any manifest.json listed; killed mid-switch, its
    journal (no export id) would have the user's files deleted when completed. It is undone instead."""
    folder = users_folder(tmp_path, None)
    before = hashes(folder)
    dead_switch(folder, {"retire": ["manifest.json", "data.csv"], "install": ["causal/attn_weights_b0.csv",
                                                                                "manifest.json"], "made": ["causal"]},
                json.dumps({"tag": "new"}).encode())
    lines = sweep(folder)
    assert len(lines) == 1 and "undid its switch-over" in lines[0]
    assert hashes(folder) == before


def test_a_journal_whose_id_matches_no_manifest_is_left_alone(tmp_path):
    """A journal (in a work folder's place) whose export id is not the new manifest's is not
    followed: nothing is moved or deleted, and the note says so."""
    folder = users_folder(tmp_path, None)
    work = dead_switch(folder, {"id": "1" * 32, "old_id": None, "retire": ["data.csv"],
                                "install": ["causal/attn_weights_b0.csv"], "made": ["causal"]},
                       stamped(["causal/attn_weights_b0.csv"]))
    before = hashes(tmp_path)
    lines = sweep(folder)
    assert len(lines) == 1 and lines[0].startswith("left 1 work folder of an interrupted export") and \
        "its journal does not match" in lines[0]
    assert hashes(tmp_path) == before and (work / "old" / "data.csv").read_bytes() == USERS_DATA["data.csv"]


# ----------------------------------------------------------------------------- the real command line

@pytest.fixture(scope="module")
def traces():
    return {b: build_trace(AttentionConfig(device="cpu", batch=b, num_heads=2, d_out=4)) for b in (2, 1)}



def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "main.py", "export", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def wait_for_staged_files(folder: Path, proc: subprocess.Popen, at_least: int) -> None:
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        staged = [p for w in work_folders(folder) for p in (w / "new").rglob("*.csv")] if folder.exists() else []
        if len(staged) >= at_least:
            return
        time.sleep(0.005)
    pytest.fail("the export finished (or hung) before it was stopped; make it bigger")


BIG = ["--embeddings", "random", "--text", " ".join(f"t{i}" for i in range(40)), "--batch", "6", "--heads", "4",
       "--d-out", "8", "--d-in", "8"]   # ~1,000 CSV files: long enough to be stopped while writing


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_real_export_stopped_while_writing(sig, traces, scratch):
    folder = scratch / "target"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    export_trace(traces[1], folder)
    before = snapshot(folder)
    proc = cli("--out", str(folder), *BIG)
    wait_for_staged_files(folder, proc, at_least=20)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
        assert err.splitlines() == ["python main.py export: terminated; nothing was written"]
        assert snapshot(folder) == before           # the old set, and no debris
        return
    assert proc.returncode == -signal.SIGKILL
    assert visible(folder) == before and len(work_folders(folder)) == 1  # old set intact + debris
    again = cli("--out", str(folder), "--batch", "2")
    out, err = again.communicate(timeout=CHILD_TIMEOUT_S)
    assert again.returncode == 0
    assert len(err.splitlines()) == 1 and err.startswith("note: swept 1 leftover of an interrupted export")
    assert work_folders(folder) == [] and (folder / "notes.txt").read_text() == "mine\n"
    manifest = json.loads((folder / "manifest.json").read_text())
    exported = {p.relative_to(folder).as_posix() for p in folder.rglob("*.csv")}
    assert exported == {t["file"] for t in manifest["tensors"]}


LARGE_SLICES = ["--embeddings", "random", "--text", " ".join(f"w{i}" for i in range(512)), "--d-in", "64",
                "--d-out", "96", "--heads", "12"]   # slices of 512 x 512: ~5 s of CSV formatting on 2 busy cores


def test_ctrl_c_while_the_formatting_threads_work_stops_the_export(traces, scratch):
    """Issue 19, cause 11: SIGINT while large slices are being formatted on the worker threads —
    sent to an export that the shell started with SIGINT ignored, as a script's ``export … &``
    does — exits 130 with the README's line, and the folder is byte for byte as it was."""
    folder = scratch / "target"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    export_trace(traces[1], folder)
    before = snapshot(folder)
    proc = cli("--out", str(folder), "--device", "cpu", *LARGE_SLICES,
               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_for_staged_files(folder, proc, at_least=3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["python main.py export: interrupted; nothing was written"]
    assert snapshot(folder) == before            # the old set, the user's file, and no debris


# ----------------------------------------------------------------------------- other filesystems

def assert_exactly(trace, folder: Path, user: dict[str, bytes]) -> None:
    """The folder holds this trace's export and the user's files, nothing else."""
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["tensors"]) == count_slices(trace)
    files = {rel for rel, v in snapshot(folder).items() if v is not None}
    assert files == {t["file"] for t in manifest["tensors"]} | {"manifest.json"} | set(user)
    for rel, data in user.items():
        assert (folder / rel).read_bytes() == data


def test_batch_2_then_batch_1_leaves_no_stale_file(traces, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "causal").mkdir()
    (folder / "causal" / "mine.csv").write_bytes(b"keep,me\n")
    export_trace(traces[2], folder)
    export_trace(traces[1], folder)
    assert_exactly(traces[1], folder, {"causal/mine.csv": b"keep,me\n"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_out_is_a_symlink_to_a_folder_on_another_filesystem(traces, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no writable /dev/shm on another filesystem than the temporary folder")
    elsewhere = Path(os.path.realpath(shm)) / f"attention-stepper-test-{os.getpid()}-{time.monotonic_ns()}"
    elsewhere.mkdir()
    try:
        (elsewhere / "notes.txt").write_bytes(b"mine\n")
        link = tmp_path / "out"
        link.symlink_to(elsewhere, target_is_directory=True)
        export_trace(traces[2], link)
        export_trace(traces[1], link)
        assert_exactly(traces[1], elsewhere, {"notes.txt": b"mine\n"})
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]   # nothing staged beside the link
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_writable_target_in_an_unwritable_parent(traces, tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root ignores folder permissions; test_export_onto_a_mounted_disk covers it (read-only mount)")
    parent = tmp_path / "parent"
    (parent / "out").mkdir(parents=True)
    parent.chmod(0o555)
    try:
        export_trace(traces[2], parent / "out")
        export_trace(traces[1], parent / "out")
        assert_exactly(traces[1], parent / "out", {})
    finally:
        parent.chmod(0o755)


MOUNTED = r"""
set -e
mount -t tmpfs tmpfs "$P"
mkdir "$P/out"
mount -t tmpfs tmpfs "$P/out"          # the target is the root of its own disk ...
echo mine > "$P/out/notes.txt"
mount -o remount,ro "$P"               # ... inside a parent that nobody may write, root included
"$PY" -c 'import sys; from core.cli import run_export
for batch in ("2", "1"):
    assert run_export(["--out", sys.argv[1], "--batch", batch, "--heads", "2", "--d-out", "4"]) == 0' "$P/out" >/dev/null
"$PY" -c 'import json, os, sys; print(json.dumps(sorted(os.path.relpath(os.path.join(d, f), sys.argv[1])
                                         for d, _, fs in os.walk(sys.argv[1]) for f in fs)))' "$P/out"
cat "$P/out/manifest.json"
"""


def test_export_onto_a_mounted_disk(traces, tmp_path):
    """--out at the root of a mounted tmpfs whose parent is read-only: staged inside, no cross-device move."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare command to mount a private tmpfs")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"mounting is not allowed here: {probe.stderr.decode(errors='replace').strip()}")
    point = tmp_path / "mnt"
    point.mkdir()
    run = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", MOUNTED], cwd=ROOT,
                         capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                         env={**os.environ, "P": str(point), "PY": sys.executable})
    if run.returncode != 0 and "mount:" in run.stderr and "export" not in run.stderr:
        pytest.skip(f"mounting a tmpfs is not allowed here: {run.stderr.strip().splitlines()[0]}")
    assert run.returncode == 0, run.stderr
    listing_line, manifest_text = run.stdout.split("\n", 1)
    listing, manifest = set(json.loads(listing_line)), json.loads(manifest_text)
    assert listing == {t["file"] for t in manifest["tensors"]} | {"manifest.json", "notes.txt"}
    assert len(manifest["tensors"]) == count_slices(traces[1])
    assert list(point.iterdir()) == []   # the mounts were private to that process
