"""What the command-line tests share: running a command in a real process (where a traceback
would show) or main() in this one, and the check that a bad option stops it with exit 2 and one
line on stderr, nothing on stdout."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# python -m core.cost and core.bench check the same --tokens and --repeats limits
COST_LIMIT_CASES = [
    (["--tokens", "0"], "--tokens: must be between 1 and 4096 (the trace's limit), got 0"),
    (["--tokens", "-5"], "--tokens: must be between 1 and 4096 (the trace's limit), got -5"),
    (["--tokens", "64", "5000"], "--tokens: must be between 1 and 4096 (the trace's limit), got 5000"),
    (["--tokens", str(10**12)], f"--tokens: must be between 1 and 4096 (the trace's limit), got {10**12}"),
    (["--repeats", "0"], "--repeats: must be between 1 and 1000, got 0"),
    (["--repeats", "-1"], "--repeats: must be between 1 and 1000, got -1"),
]


def run_module(module: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m module args`` in a real process, from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def run_main(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python main.py args`` in a real process, from the repository root."""
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def assert_refused(res: subprocess.CompletedProcess, says: str) -> None:
    """The process exited 2 with one line on stderr that contains ``says``, no traceback, no output."""
    assert res.returncode == 2 and res.stdout == "", (res.returncode, res.stdout, res.stderr)
    assert res.stderr.count("\n") == 1 and says in res.stderr and "Traceback" not in res.stderr, res.stderr


def exits_2_with_one_line(main, argv: list[str], capsys) -> str:
    """``main(argv)`` stops with exit 2, nothing on stdout and one line on stderr; returns that line."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.endswith("\n"), captured
    return captured.err
