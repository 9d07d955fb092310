"""``python main.py``'s command line: commands from one table, a lesson path, and one-line
errors (exit 2) for a typo, an unknown option or a word that is neither."""
from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def opened(monkeypatch) -> list:
    """What the window would have been opened with (gui.app.run_app replaced: no window here)."""
    calls: list = []
    fake = types.ModuleType("gui.app")
    fake.run_app = lambda argv: calls.append(list(argv)) or 0
    monkeypatch.setitem(sys.modules, "gui.app", fake)
    return calls


@pytest.mark.parametrize("argv, line", [
    (["exprot", "--out", "x"], "unknown command 'exprot' (did you mean 'export'?)"),
    (["Export"], "unknown command 'Export' (did you mean 'export'?)"),
    (["bnech"], "unknown command 'bnech' (did you mean 'bench'?)"),
    (["--bogus"], "unknown option '--bogus'"),
    (["-platform", "offscreen"], "unknown option '-platform'"),
    (["lesson.json", "--quick"], "unknown option '--quick'"),
    (["a.json", "b.json"], "one lesson at a time; got 2 arguments"),
    (["hello"], "unknown command 'hello': the commands are export, train, bench, and a lesson is a .json file"),
    (["caf\udce9"], "unknown command 'caf\\udce9'"),
])
def test_a_word_that_is_no_command_or_lesson_is_one_line_and_exit_2(argv, line, opened, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"python main.py: error: {line}")
    assert opened == [], "the window must not open"


def test_the_window_opens_without_arguments_or_with_a_lesson(opened, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saved-lesson").write_text("{}")          # a regular file without .json is a lesson too
    assert main.main([]) == 0
    assert main.main(["missing.json"]) == 0                # the window says it does not exist
    assert main.main(["LESSON.JSON"]) == 0
    assert main.main(["saved-lesson"]) == 0
    assert opened == [[], ["missing.json"], ["LESSON.JSON"], ["saved-lesson"]]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_fifo_without_json_is_not_taken_for_a_lesson(opened, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    assert main.main(["pipe"]) == 2
    assert "unknown command 'pipe'" in capsys.readouterr().err and opened == []


def test_commands_come_from_one_table(monkeypatch, opened):
    """A new command is one line in main.COMMANDS (module imported only when it runs)."""
    module = types.ModuleType("fake_command_module")
    module.run = lambda argv: 40 + len(argv)
    monkeypatch.setitem(sys.modules, "fake_command_module", module)
    monkeypatch.setitem(main.COMMANDS, "train", ("fake_command_module", "run"))
    assert main.main(["train", "--steps", "3"]) == 42
    assert main.main(["trian"]) == 2                      # and the typo check knows it


def test_a_typo_in_a_real_process_opens_no_window(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "exprot", "--out", "x"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "python main.py: error: unknown command 'exprot' (did you mean 'export'?)\n"
    assert list(tmp_path.iterdir()) == []
