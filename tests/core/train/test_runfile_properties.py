"""Property: whatever a run file declares (shapes, dtypes, unpacked sizes up to 1 GiB, compression
ratios up to ~1000), opening it is either refused in one line or gives the run, and never
allocates more than 200 MB: per file with tracemalloc (numpy reports its buffers to it), and for
the whole corpus in a fresh process by its peak resident memory (ru_maxrss)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from core.train.runfile import RunFileError, load_run, save_run
from core.train.runner import train
from tests.core.train.conftest import small
from tests.core.train.runfile_craft import crafted, write_npz

ROOT = Path(__file__).resolve().parents[3]
LIMIT = 200 * 10**6


@pytest.fixture(scope="module")
def run():
    return train(small(steps=8, snapshot_every=4))


def test_any_crafted_run_file_is_refused_or_read_without_allocating_what_it_declares(tmp_path, run):
    files: list[Path] = []

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(crafted(run))
    def check(craft):
        what, members = craft
        path = write_npz(tmp_path / f"{len(files)}.run.npz", members)
        files.append(path)
        tracemalloc.start()
        try:
            try:
                back = load_run(path)
            except RunFileError as exc:
                message = str(exc)
                assert "\n" not in message and len(message) < 400, (what, message)
            else:
                assert what.startswith("valid") or what.startswith("declared"), what
                assert back.history_loss == run.history_loss
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < LIMIT, f"{what}: {peak / 2**20:.0f} MiB allocated"

    check()
    save_run(run, tmp_path / "warm.npz")
    script = textwrap.dedent(f"""
        import resource, sys
        from core.train.runfile import RunFileError, load_run
        load_run({str(tmp_path / 'warm.npz')!r})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for path in sys.argv[1:]:
            try:
                load_run(path)
            except RunFileError:
                pass
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script, *map(str, files)], capture_output=True, text=True,
                         timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    grown = int(out.stdout)
    assert grown < LIMIT, f"{len(files)} crafted files: peak resident memory grew by {grown / 2**20:.0f} MiB"
