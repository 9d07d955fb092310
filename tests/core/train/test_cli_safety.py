"""`python main.py train` against hostile input and signals (issue 19, causes 5, 6 and 7):
a --text that is a FIFO, a device or a huge sparse file; sizes too big for memory; SIGTERM.
Each ends with exit 2 (or 143) and one line, the target folder byte-identical."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import main
from core import memory
from tests.core.snapshots import snapshot as folder_snapshot

REPO = Path(__file__).resolve().parents[3]
PROG = "python main.py train"
TINY = ["--vocab-size", "16", "--seq-len", "6", "--d-model", "16", "--heads", "2", "--batch", "8",
        "--steps", "8", "--snapshot-every", "4", "--device", "cpu", "--seed", "3"]
LARGEST = ["--seq-len", "256", "--d-model", "1024", "--heads", "16", "--layers", "8", "--batch", "1024",
           "--device", "cpu"]
# Without the fix, /dev/zero and the sparse file were read whole: the cap turns that into a quick
# MemoryError (a failing test) instead of a machine out of memory.
ADDRESS_SPACE_CAP = 3 * 2**30


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))


def run_cli(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "main.py"), "train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=_cap_memory)


def user_target(root: Path) -> Path:
    """A folder holding the user's own files and a run written there before."""
    target = root / "target"
    assert main.main(["train", "--out", str(target), *TINY]) == 0
    (target / "notes.txt").write_text("my notes\n")
    (target / "data.csv").write_bytes(b"a,b\n1,2\n")
    return target


def one_error_line(err: str, expected: str) -> None:
    assert err.count("\n") == 1 and err.startswith(f"{PROG}: error: ") and expected in err, err
    assert "Traceback" not in err


def _fifo(tmp_path: Path) -> str:
    path = tmp_path / "story.txt"
    os.mkfifo(path)                  # no writer ever comes: opening it for reading would wait for ever
    return str(path)


def _sparse(tmp_path: Path) -> str:
    path = tmp_path / "huge.txt"
    with open(path, "wb") as fh:
        fh.truncate(2 * 2**30)       # 2 GiB of holes: nothing on disk, 2 GiB if read
    return str(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="POSIX files")
@pytest.mark.parametrize("make, expected", [
    (_fifo, "is a named pipe (FIFO), not a file"),
    (lambda tmp_path: "/dev/zero", "/dev/zero is a device, not a file"),
    (_sparse, "huge.txt is 2048 MiB; a UTF-8 .txt file is at most 1.9 MiB"),
], ids=["fifo", "dev_zero", "sparse_2gb"])
def test_a_text_that_is_a_fifo_a_device_or_huge_is_refused_before_reading(tmp_path, make, expected):
    text = make(tmp_path)
    target = user_target(tmp_path)
    before = folder_snapshot(target)
    proc = run_cli(["--task", "next_word", "--text", text, "--out", str(target), "--device", "cpu"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, expected)
    assert proc.stderr.startswith(f"{PROG}: error: --text: ")
    assert proc.stdout == ""
    assert folder_snapshot(target) == before


def test_the_largest_sizes_are_refused_for_memory_before_anything_is_allocated(tmp_path, capsys, monkeypatch):
    """seq-len 256, d-model 1024, 16 heads, 8 layers, batch 1024 need ~430 GiB: one line, exit 2,
    and neither the task nor the model was built."""
    import core.train.runner as runner
    target = user_target(tmp_path)
    before = folder_snapshot(target)

    def never(*args, **kwargs):
        raise AssertionError("allocated before the memory guard")

    monkeypatch.setattr(runner, "make_task", never)
    monkeypatch.setattr(runner, "build_model", never)
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 64 * 2**30)
    with pytest.raises(SystemExit) as info:
        main.main(["train", "--out", str(target), *LARGEST])
    assert info.value.code == 2
    err = capsys.readouterr().err
    one_error_line(err, "too big for memory: this training needs about ")
    assert "the budget is 32.0 GiB (50% of 64.0 GiB free)" in err and "--batch" in err
    assert folder_snapshot(target) == before


def test_the_largest_sizes_in_a_real_process_end_in_one_line_not_a_traceback(tmp_path):
    proc = run_cli(["--out", str(tmp_path / "o"), *LARGEST], tmp_path)
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, "too big for memory")
    assert not (tmp_path / "o").exists()


# The child reports the first optimiser step on stdout, so that the signal lands while it trains.
_REPORTS_TRAINING = """
import sys
import core.train.runner as runner
real = runner.train
def train(settings, control=None, on_snapshot=None, on_progress=None, on_start=None):
    def progress(step, *rest):
        if step == 1:
            print("training", flush=True)
    return real(settings, control, on_snapshot, progress, on_start)
runner.train = train
import main
sys.exit(main.main(sys.argv[1:]))
"""


def test_sigterm_while_training_exits_143_and_leaves_the_target_as_it_was(tmp_path):
    target = user_target(tmp_path)
    before = folder_snapshot(target)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["train", "--out", str(target), *TINY, "--steps", "100000", "--snapshot-every", "1000"]
    proc = subprocess.Popen([sys.executable, "-c", _REPORTS_TRAINING, *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "training\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert err == f"{PROG}: terminated; nothing was written\n"
    assert folder_snapshot(target) == before            # no work folder left, the older run as it was


def test_sigterm_while_the_folder_is_written_removes_the_work_folder(tmp_path, capsys, monkeypatch):
    """The signal lands inside the write (between two files): 143, the staged files and the work
    folder gone, the earlier run and the user's files byte-identical."""
    import core.train.folder as train_folder
    target = user_target(tmp_path)
    before = folder_snapshot(target)
    real_save = train_folder.save_run
    staged = []

    def save_then_terminated(run, path):
        real_save(run, path)
        staged.append(Path(path).parent.parent)       # <target>/.attention-stepper-export-<id>/new
        os.kill(os.getpid(), signal.SIGTERM)          # delivered at the next bytecode: here

    monkeypatch.setattr(train_folder, "save_run", save_then_terminated)
    outside = []                                      # the test's own handler: SIGTERM never kills pytest

    def test_handler(signum, frame):
        outside.append(signum)

    previous = signal.signal(signal.SIGTERM, test_handler)
    try:
        code = main.main(["train", "--out", str(target), *TINY])
    finally:
        after = signal.signal(signal.SIGTERM, previous)
    assert code == 143 and outside == []
    assert capsys.readouterr().err == f"{PROG}: terminated; nothing was written\n"
    assert staged and staged[0].parent == target and not staged[0].exists()
    assert folder_snapshot(target) == before
    assert after is test_handler                      # the caller's handler is put back


def test_a_work_folder_left_by_a_killed_run_is_swept_with_a_note(tmp_path, capsys):
    """After a kill -9 the next run sweeps the dead work folder and says so on one note line."""
    target = user_target(tmp_path)
    dead = target / ".attention-stepper-export-dead1234" / "new"
    dead.mkdir(parents=True)
    (dead / "loss.csv").write_text("half-written\n")
    capsys.readouterr()
    assert main.main(["train", "--out", str(target), *TINY]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith("note: swept 1 leftover of an interrupted export in "), notes
    assert not dead.parent.exists()
    assert (target / "notes.txt").read_text() == "my notes\n" and (target / "data.csv").read_bytes() == b"a,b\n1,2\n"
