"""`python -m core.bench`: bad options and an unwritable --json stop with one line before measuring;
the figures are written atomically (a failed write leaves the older file as it was)."""
from __future__ import annotations

import json
import os

import pytest

from core import bench
from tests.core.cli_runner import COST_LIMIT_CASES, exits_2_with_one_line, run_module
from tests.core.snapshots import snapshot as folder_snapshot

PROG = "python -m core.bench"


@pytest.fixture
def never_measures(monkeypatch):
    def measured(*args, **kwargs):
        raise AssertionError("measured before the options were checked")

    monkeypatch.setattr(bench, "run", measured)


@pytest.mark.parametrize("argv, expected", COST_LIMIT_CASES + [
    (["--repeats", "x"], "argument --repeats: 'x' is not a whole number"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--json", "{tmp}/missing/bench.json"], "--json: the folder {tmp}/missing does not exist"),
    (["--json", "{tmp}"], "--json: {tmp} is a folder; name a file in it, e.g. {tmp}/bench.json"),
    (["--json", ""], "--json: is empty"),
])
def test_bad_bench_options_exit_2_with_one_line_before_measuring(argv, expected, tmp_path, capsys, never_measures):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    before = folder_snapshot(tmp_path)
    err = exits_2_with_one_line(bench.main, argv, capsys)
    assert err.startswith(f"{PROG}: error: {expected.replace('{tmp}', str(tmp_path))}"), err
    assert folder_snapshot(tmp_path) == before


def test_bench_in_a_real_process_gives_one_line_not_a_traceback(tmp_path):
    proc = run_module("core.bench", "--tokens", "8", "--repeats", "1", "--json", str(tmp_path / "missing" / "b.json"),
                      timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"{PROG}: error: --json: the folder {tmp_path / 'missing'} does not exist\n"


def test_the_json_figures_replace_an_older_file_atomically(tmp_path, capsys):
    target = tmp_path / "bench.json"
    target.write_text('{"older": true}\n')
    assert bench.main(["--tokens", "8", "--repeats", "1", "--json", str(target)]) == 0
    written = json.loads(target.read_text())
    shown = capsys.readouterr().out.splitlines()[1].split()         # the table's row for 8 tokens
    assert written["trace_vs_fused"]["8"]["tokens"] == 8
    assert float(shown[2]) == pytest.approx(written["trace_vs_fused"]["8"]["fused_ms"], abs=0.051)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]    # no temporary file left


def test_a_write_that_fails_at_the_end_keeps_the_older_file_and_says_so(tmp_path, capsys, monkeypatch):
    target = tmp_path / "bench.json"
    target.write_text('{"older": true}\n')
    before = folder_snapshot(tmp_path)
    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if str(dst) == str(target):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    assert bench.main(["--tokens", "8", "--repeats", "1", "--json", str(target)]) == 1
    captured = capsys.readouterr()
    assert "fused ms" in captured.out                                   # the figures are on the screen
    assert captured.err == (f"{PROG}: error: --json: cannot write {target}: No space left on device "
                            "(the figures are printed above)\n")
    assert folder_snapshot(tmp_path) == before                          # the older file, no temporary
