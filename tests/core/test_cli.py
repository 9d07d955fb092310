"""core.cli: the bad-input catalogue of the headless export (issue 6): every bad option or file ends in
exit status 2, exactly one line on stderr that names the option, no traceback, and nothing
written: no output folder, no half-written files, no hidden ``.partial-``/``.backup-`` folders.

Most rows run in-process (``core.cli.run_export``, fast); a sample runs ``python main.py
export`` in a real subprocess to prove that no traceback reaches the terminal.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core import cli
from core.config import MAX_TEXT_CHARS, MAX_TOKENS
from tests.core.snapshots import existing_target, fail_nth, fail_nth_file_write, make_input_files, snapshot

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- helpers

def run_in_process(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = cli.run_export(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "export", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_clear_line(code: int, err: str, option: str, words: tuple[str, ...] = ()) -> str:
    assert code == 2, f"exit {code}, stderr: {err!r}"
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    line = lines[0]
    assert line.startswith("python main.py export: error: "), line
    assert option in line, f"{option!r} not named in {line!r}"
    for w in words:
        assert w.lower() in line.lower(), f"{w!r} not in {line!r}"
    assert len(line) < 400, "one readable line, not a dump"
    return line


# ----------------------------------------------------------------------------- input files

@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    return make_input_files(tmp_path)


# Each row: id, argv (``{name}`` is replaced by the path of that input file), the option the
# line must name, and words it must contain.
CATALOGUE = [
    ("d_out not divisible by heads", ["--d-out", "3", "--heads", "2"], "--heads", ("divisible",)),
    ("heads 0", ["--heads", "0"], "--heads", ("between 1 and",)),
    ("heads negative", ["--heads", "-1"], "--heads", ("between 1 and",)),
    ("heads absurd", ["--heads", "100000", "--d-out", "100000"], "--d-out", ("between 1 and",)),
    ("heads above limit", ["--heads", "512", "--d-out", "512"], "--heads", ("between 1 and 256",)),
    ("d_in 0", ["--text", "hi there", "--d-in", "0"], "--d-in", ("between 1 and",)),
    ("d_in negative", ["--text", "hi there", "--d-in", "-3"], "--d-in", ("between 1 and",)),
    ("d_in absurd", ["--text", "hi there", "--d-in", "100000"], "--d-in", ("between 1 and 8192",)),
    ("d_out 0", ["--d-out", "0"], "--d-out", ("between 1 and",)),
    ("d_out negative", ["--d-out", "-2"], "--d-out", ("between 1 and",)),
    ("d_out absurd", ["--d-out", "1000000000000"], "--d-out", ("between 1 and 8192",)),
    ("batch 0", ["--batch", "0"], "--batch", ("between 1 and",)),
    ("batch absurd", ["--batch", "100000"], "--batch", ("between 1 and 64",)),
    ("dropout nan", ["--dropout", "nan"], "--dropout", ("[0, 1)",)),
    ("dropout 1.0", ["--dropout", "1.0"], "--dropout", ("[0, 1)",)),
    ("dropout -0.1", ["--dropout", "-0.1"], "--dropout", ("[0, 1)",)),
    ("dropout inf", ["--dropout", "inf"], "--dropout", ("[0, 1)",)),
    ("dropout 1.5", ["--dropout", "1.5"], "--dropout", ("[0, 1)",)),
    ("dropout not a number", ["--dropout", "half"], "--dropout", ("not a number",)),
    ("seed negative", ["--seed", "-1"], "--seed", ("between 0 and",)),
    ("seed absurd", ["--seed", str(2**70)], "--seed", ("between 0 and",)),
    ("dropout seed negative", ["--dropout-seed", "-5"], "--dropout-seed", ("between 0 and",)),
    ("text empty", ["--text", ""], "--text", ("empty",)),
    ("text whitespace", ["--text", "   "], "--text", ("empty",)),
    ("text tabs and newlines", ["--text", "\t\n \r\n"], "--text", ("empty",)),
    ("text too many characters", ["--text", "a" * (MAX_TEXT_CHARS + 1)], "--text", ("limit",)),
    ("text too many tokens", ["--text", "a " * (MAX_TOKENS + 1)], "--text", ("limit", str(MAX_TOKENS))),
    # a Latin-1 terminal's 'café' reaches sys.argv as 'caf\udce9' (the byte that is not UTF-8)
    ("text not UTF-8", ["--text", "caf\udce9 au lait"], "--text", ("byte 0xE9", "not UTF-8")),
    ("text with a lone surrogate", ["--text", "a \ud800 b"], "--text", ("lone surrogate U+D800",)),
    ("embeddings path not text", ["--embeddings", "emb\ud800.csv"], "--embeddings", ("not text",)),
    ("embeddings label with a line break", ["--embeddings", "{label_newline}"], "--embeddings",
     ("line 2", "line break")),
    ("embeddings missing", ["--embeddings", "{missing}"], "--embeddings", ("does not exist",)),
    ("embeddings a folder", ["--embeddings", "{folder}"], "--embeddings", ("not a file",)),
    ("embeddings name too long", ["--embeddings", "{name_too_long}"], "--embeddings", ("cannot be opened",)),
    ("embeddings empty", ["--embeddings", "{empty}"], "--embeddings", ("empty",)),
    ("embeddings blank lines", ["--embeddings", "{blank_lines}"], "--embeddings", ("empty",)),
    ("embeddings header only", ["--embeddings", "{header_only}"], "--embeddings", ("no token rows",)),
    ("embeddings ragged", ["--embeddings", "{ragged}"], "--embeddings", ("line 2", "same number")),
    ("embeddings no values", ["--embeddings", "{no_values}"], "--embeddings", ("no values",)),
    ("embeddings non-number", ["--embeddings", "{non_number}"], "--embeddings", ("'x' is not a number",)),
    ("embeddings NaN", ["--embeddings", "{nan}"], "--embeddings", ("not a finite number",)),
    ("embeddings +inf", ["--embeddings", "{inf}"], "--embeddings", ("not a finite number",)),
    ("embeddings -inf", ["--embeddings", "{minus_inf}"], "--embeddings", ("not a finite number",)),
    ("embeddings missing label", ["--embeddings", "{no_label}"], "--embeddings", ("no token label",)),
    ("embeddings not UTF-8", ["--embeddings", "{latin1}"], "--embeddings", ("cannot be read",)),
    ("embeddings field too large", ["--embeddings", "{huge_field}"], "--embeddings", ("not a readable csv",)),
    ("embeddings value too large", ["--embeddings", "{huge_value}"], "--embeddings", ("finite number between",)),
    ("embeddings NaN with --d-in", ["--embeddings", "{nan}", "--d-in", "2"], "--embeddings", ("finite",)),
    ("embeddings width != d_in", ["--embeddings", "{width2}", "--d-in", "3"], "--d-in", ("2 values", "set d_in to 2")),
    ("embeddings blank", ["--embeddings", ""], "--embeddings", ("book", "random")),
    ("embeddings whitespace", ["--embeddings", "   "], "--embeddings", ("book", "random")),
    ("book embeddings with own text", ["--embeddings", "book", "--text", "hello there"], "--embeddings", ("random",)),
    ("book embeddings with d_in 4", ["--embeddings", "book", "--d-in", "4"], "--d-in", ("3-dimensional",)),
    ("unknown init", ["--init", "xavier"], "--init", ("rand", "linear")),
    ("unknown device", ["--device", "tpu"], "--device", ("auto", "cpu", "cuda")),
    ("unknown dtype", ["--dtype", "float16"], "--dtype", ("float32", "float64")),
    ("unknown format", ["--format", "xls"], "--format", ("csv",)),
    ("d_out 2.5", ["--d-out", "2.5"], "--d-out", ("whole number",)),
    ("heads 1e3", ["--heads", "1e3"], "--heads", ("whole number",)),
    ("batch 2.0", ["--batch", "2.0"], "--batch", ("whole number",)),
    ("seed word", ["--seed", "abc"], "--seed", ("whole number",)),
    ("d_in empty", ["--d-in", ""], "--d-in", ("whole number",)),
    ("unknown option", ["--depth", "3"], "--depth", ("unrecognized",)),
    ("out empty", ["--out", ""], "--out", ("empty",)),
    ("trace too big for memory", ["--text", "a " * MAX_TOKENS, "--batch", "64", "--heads", "256", "--d-out", "256"],
     "--batch", ("too big for memory", "reduce", "tokens (4096)", "batch (64)")),
]


def _argv(row_argv: list[str], files: dict[str, str], out: Path) -> list[str]:
    argv = [a.format(**files) if a.startswith("{") else a for a in row_argv]
    if "--out" not in argv:
        argv = ["--out", str(out), *argv]
    return argv


@pytest.mark.parametrize("argv, option, words", [pytest.param(a, o, w, id=i) for i, a, o, w in CATALOGUE])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(argv, option, words, files, tmp_path, capsys):
    before = snapshot(tmp_path)
    code, out, err = run_in_process(_argv(argv, files, tmp_path / "out"), capsys)
    assert_one_clear_line(code, err, option, words)
    assert out == ""
    assert snapshot(tmp_path) == before, "a refused export must not create or change anything"


# A sample through a real process: the terminal sees one line and no traceback.
SUBPROCESS_ROWS = ["d_out not divisible by heads", "dropout nan", "seed negative", "text whitespace", "text not UTF-8",
                   "embeddings ragged", "embeddings NaN", "embeddings field too large", "embeddings name too long",
                   "unknown device", "d_out 2.5", "trace too big for memory"]


@pytest.mark.parametrize("row", SUBPROCESS_ROWS)
def test_bad_input_in_a_real_process(row, files, tmp_path):
    _, argv, option, words = next(r for r in CATALOGUE if r[0] == row)
    before = snapshot(tmp_path)
    code, out, err = run_subprocess(_argv(argv, files, tmp_path / "out"), cwd=tmp_path)
    assert_one_clear_line(code, err, option, words)
    assert out == ""
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_embeddings_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path_factory, tmp_path, capsys):
    """Opening a FIFO for reading waits for a writer for ever: refused before it is opened."""
    fifo = tmp_path_factory.mktemp("fifo") / "emb.csv"      # outside tmp_path: snapshot() would read it
    os.mkfifo(fifo)
    before = snapshot(tmp_path)
    code, out, err = run_in_process(["--out", str(tmp_path / "out"), "--embeddings", str(fifo)], capsys)
    assert_one_clear_line(code, err, "--embeddings", ("is a named pipe (FIFO), not a file",))
    assert snapshot(tmp_path) == before


def test_every_catalogue_row_is_distinct():
    ids = [r[0] for r in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert set(SUBPROCESS_ROWS) <= set(ids)


def test_memory_guard_refuses_before_allocating(tmp_path, capsys, monkeypatch):
    """The budget check runs before build_trace: nothing is computed for a refused config."""
    import core.trace
    from core import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1024 * 1024)  # 1 MiB free

    def must_not_run(*a, **k):
        raise AssertionError("build_trace ran although the config is over budget")

    monkeypatch.setattr(core.trace, "build_trace", must_not_run)
    code, _, err = run_in_process(["--out", str(tmp_path / "out"), "--text", "a " * 200, "--batch", "8"], capsys)
    assert_one_clear_line(code, err, "--batch", ("too big for memory", "reduce", "tokens (200)", "batch (8)"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("error", [MemoryError(), getattr(torch, "OutOfMemoryError", MemoryError)("CUDA out of memory")])
def test_out_of_memory_anyway_is_one_line(error, tmp_path, capsys, monkeypatch):
    """If the estimate was wrong and the allocation fails anyway, still one line, no traceback."""
    import core.trace

    def oom(*a, **k):
        raise error

    monkeypatch.setattr(core.trace, "build_trace", oom)
    code, _, err = run_in_process(["--out", str(tmp_path / "out")], capsys)
    assert_one_clear_line(code, err, "--batch", ("out of memory", "reduce"))
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- --out targets

def test_out_is_an_existing_file(tmp_path, capsys):
    target = tmp_path / "report.csv"
    target.write_text("keep me\n")
    before = snapshot(tmp_path)
    code, out, err = run_in_process(["--out", str(target)], capsys)
    assert_one_clear_line(code, err, "--out", ("is a file",))
    assert snapshot(tmp_path) == before


def test_out_below_an_existing_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("keep me\n")
    before = snapshot(tmp_path)
    code, out, err = run_in_process(["--out", str(tmp_path / "afile" / "sub")], capsys)
    assert_one_clear_line(code, err, "--out", ("cannot create",))
    assert snapshot(tmp_path) == before


def test_out_is_an_existing_file_in_a_real_process(tmp_path):
    (tmp_path / "afile").write_text("keep me\n")
    before = snapshot(tmp_path)
    code, out, err = run_subprocess(["--out", "afile"], cwd=tmp_path)
    assert_one_clear_line(code, err, "--out", ("is a file",))
    assert snapshot(tmp_path) == before


READ_ONLY = OSError(errno.EACCES, os.strerror(errno.EACCES))
DISK_FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("existing", [False, True], ids=["new-target", "existing-target"])
@pytest.mark.parametrize("error, words", [(PermissionError(errno.EACCES, os.strerror(errno.EACCES)), ("permission denied",)),
                                          (DISK_FULL, ("no space left",))], ids=["read-only", "disk-full"])
@pytest.mark.parametrize("nth", [1, 5, 40])
def test_write_fails_midway(existing, error, words, nth, tmp_path, capsys, monkeypatch):
    """Read-only folder or full disk (simulated: tests run as root, so chmod would not stop
    them): the n-th file write fails. Message, exit 2, the target exactly as it was."""
    target = existing_target(tmp_path) if existing else tmp_path / "target"
    before = snapshot(tmp_path)
    fail_nth_file_write(monkeypatch, nth, error)
    code, out, err = run_in_process(["--out", str(target)], capsys)
    assert_one_clear_line(code, err, "--out", words)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("existing", [False, True], ids=["new-target", "existing-target"])
@pytest.mark.parametrize("nth", [1, 2, 3, 10, 41])
def test_rename_fails_midway(existing, nth, tmp_path, capsys, monkeypatch):
    """Moving the finished files into place fails at the n-th rename: every file already moved
    is taken back and every replaced file restored."""
    import core.export

    target = existing_target(tmp_path) if existing else tmp_path / "target"
    before = snapshot(tmp_path)
    monkeypatch.setattr(core.export.os, "replace", fail_nth(os.replace, nth, DISK_FULL))
    code, out, err = run_in_process(["--out", str(target)], capsys)
    assert_one_clear_line(code, err, "--out", ("no space left",))
    assert snapshot(tmp_path) == before


def test_cannot_create_the_staging_folder(tmp_path, capsys, monkeypatch):
    import core.export

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(core.export.tempfile, "mkdtemp", refuse)
    target = existing_target(tmp_path)
    before = snapshot(tmp_path)
    code, out, err = run_in_process(["--out", str(target)], capsys)
    assert_one_clear_line(code, err, "--out", ("permission denied",))
    assert snapshot(tmp_path) == before


def test_failed_export_removes_the_parent_folders_it_created(tmp_path, capsys, monkeypatch):
    fail_nth_file_write(monkeypatch, 3, DISK_FULL)
    before = snapshot(tmp_path)
    code, out, err = run_in_process(["--out", str(tmp_path / "new" / "deeper" / "target")], capsys)
    assert_one_clear_line(code, err, "--out", ("no space left",))
    assert snapshot(tmp_path) == before


def test_out_in_a_real_read_only_folder_when_not_root(tmp_path):
    """Where the tests do not run as root, a real read-only folder is refused the same way."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root ignores folder permissions; simulated above")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        before = snapshot(tmp_path)
        code, out, err = run_subprocess(["--out", str(ro / "target")], cwd=tmp_path)
        assert_one_clear_line(code, err, "--out", ("permission denied",))
        assert snapshot(tmp_path) == before
    finally:
        ro.chmod(0o755)


# ----------------------------------------------------------------------------- --device cuda

def test_cuda_without_a_gpu_runs_on_the_cpu_with_a_note(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is available here")
    code, out, err = run_subprocess(["--out", str(tmp_path / "out"), "--device", "cuda"], cwd=tmp_path)
    assert code == 0, err
    assert "Traceback" not in err
    assert err.splitlines() == ["note: CUDA was requested but no CUDA GPU is available; computed on the CPU"]
    assert "(cpu," in out
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_good_options_still_export(tmp_path, capsys, files):
    """The guard rails do not refuse the good neighbours of the bad rows."""
    for i, argv in enumerate([
        ["--d-out", "4", "--heads", "4", "--dropout", "0.999", "--seed", "0", "--dropout-seed", str(2**63 - 1)],
        ["--text", "Hi, you! ¿Qué tal? 😀 —", "--d-in", "5", "--d-out", "6", "--heads", "3", "--batch", "3"],
        ["--embeddings", files["width2"], "--init", "rand", "--dtype", "float64", "--no-causal", "--qkv-bias"],
        ["--text", "... ,,, !!"],
    ]):
        out_dir = tmp_path / f"ok{i}"
        code, out, err = run_in_process(["--out", str(out_dir), *argv], capsys)
        assert code == 0, err
        assert err == ""
        assert (out_dir / "manifest.json").is_file()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cuda_note_does_not_join_an_error_line(tmp_path, capsys, monkeypatch):
    """--device cuda without a GPU and a bad --out: only the error line."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is available here")
    (tmp_path / "afile").write_text("keep me\n")
    code, _, err = run_in_process(["--out", str(tmp_path / "afile"), "--device", "cuda"], capsys)
    assert_one_clear_line(code, err, "--out", ("is a file",))


@pytest.mark.parametrize("where", ["compute", "write", "move"])
def test_ctrl_c_is_one_line_and_leaves_nothing(where, tmp_path, capsys, monkeypatch):
    import core.export
    import core.trace

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    target = existing_target(tmp_path)        # before the patches: its files are written for real
    before = snapshot(tmp_path)
    if where == "compute":
        monkeypatch.setattr(core.trace, "build_trace", interrupt)
    elif where == "write":                    # the export's first file
        fail_nth_file_write(monkeypatch, 1, KeyboardInterrupt())
    else:
        monkeypatch.setattr(core.export.os, "replace", fail_nth(os.replace, 6, KeyboardInterrupt()))
    code, out, err = run_in_process(["--out", str(target)], capsys)
    assert code == 130
    assert err.splitlines() == ["python main.py export: interrupted; nothing was written"]
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["o" * 300, "o/" * 2100, "o/" * 50 + "p" * 300],
                         ids=["name-too-long", "path-too-long", "deep-then-name-too-long"])
def test_out_path_too_long(name, tmp_path, capsys):
    before = snapshot(tmp_path)
    code, out, err = run_in_process(["--out", str(tmp_path / name)], capsys)
    assert_one_clear_line(code, err, "--out", ("too long",))
    assert snapshot(tmp_path) == before, "folders created on the way are removed again"


def test_out_path_too_long_in_a_real_process(tmp_path):
    before = snapshot(tmp_path)
    code, out, err = run_subprocess(["--out", "o" * 300], cwd=tmp_path)
    assert_one_clear_line(code, err, "--out", ("too long",))
    assert snapshot(tmp_path) == before


def test_cpu_allocator_failure_is_one_out_of_memory_line(tmp_path, capsys, monkeypatch):
    """torch's CPU allocator reports RuntimeError ("can't allocate memory"), not MemoryError."""
    import core.trace

    def fail(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1000000000000 bytes.")
    monkeypatch.setattr(core.trace, "build_trace", fail)
    with pytest.raises(SystemExit) as exit_info:
        cli.run_export(["--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "out of memory" in err
    assert not (tmp_path / "o").exists()
