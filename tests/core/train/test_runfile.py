"""Run files (core.train.runfile) that lie are refused in one line before anything is unpacked:
arrays whose header declares a huge shape or another dtype, zip members that declare a huge
unpacked size or unpack like a bomb, a zip directory of thousands of entries, probe tokens that
no typed token could be; and run files get the permissions of the user's umask."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from core.train import runfile
from core.train.runfile import RunFileError, load_run, run_arrays, save_run
from core.train.runner import train
from tests.core.train.conftest import small
from tests.core.train.runfile_craft import Member, members_of, meta_array, write_npz

ROOT = Path(__file__).resolve().parents[3]
MiB = 2**20


@pytest.fixture(scope="module")
def run():
    return train(small(steps=8, snapshot_every=4))


def _refused(path: Path, match: str, budget: int = 20 * MiB) -> str:
    """load_run refuses ``path`` in one line naming ``match``, allocating at most ``budget`` meanwhile
    and leaving every file in its folder byte-identical."""
    before = {p.name: p.read_bytes() for p in path.parent.iterdir() if p.is_file() and not p.is_symlink()}
    tracemalloc.start()
    try:
        with pytest.raises(RunFileError) as info:
            load_run(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert match in message and "\n" not in message and len(message) < 400, message
    assert peak < budget, f"{peak / MiB:.0f} MiB allocated to refuse {path.name}"
    assert {p.name: p.read_bytes() for p in path.parent.iterdir() if p.is_file() and not p.is_symlink()} == before
    return message


def test_a_valid_run_still_opens_with_its_numbers(tmp_path, run):
    back = load_run(save_run(run, tmp_path / "run.npz"))
    assert back.settings == run.settings and back.probe_tokens == run.probe_tokens
    assert back.history_loss == run.history_loss and back.notes == run.notes
    for a, b in zip(back.snapshots, run.snapshots):     # float32 stored and read back: exact
        assert a.step == b.step and (a.loss, a.accuracy) == (b.loss, b.accuracy)
        assert np.array_equal(a.attn_weights, b.attn_weights) and a.attn_weights.dtype == np.float32
        assert all(np.array_equal(a.weights[k], b.weights[k]) for k in b.weights)


def test_a_compressed_256_mib_history_is_refused_without_exhausting_memory(tmp_path, run):
    """The issue's file: a valid run plus a deflated 256 MiB history_loss (a 0.3 MB file). Measured
    in a fresh process: its peak resident memory grows by less than 200 MB (was 3.9 GB)."""
    members = members_of(run_arrays(run))
    members["history_loss"] = Member("history_loss", (2**25,), "<f8", zeros=2**28, deflate=True)
    bomb = write_npz(tmp_path / "bomb.run.npz", members)
    assert bomb.stat().st_size < MiB
    script = textwrap.dedent(f"""
        import resource, sys
        from core.train.runfile import RunFileError, load_run
        load_run({str(tmp_path / 'ok.npz')!r})                  # everything imported and warmed up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_run({str(bomb)!r})
            print("accepted")
        except RunFileError as exc:
            print("refused:", exc)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    """)
    save_run(run, tmp_path / "ok.npz")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    verdict, grown = out.stdout.strip().splitlines()
    assert verdict.startswith("refused:") and "history_loss has shape (33554432,), expected (8,)" in verdict
    assert int(grown) < 200 * MiB, f"peak resident memory grew by {int(grown) / MiB:.0f} MiB"


def test_an_array_header_declaring_a_huge_shape_is_refused_before_reading(tmp_path, run):
    members = members_of(run_arrays(run))
    members["attn_weights"] = Member("attn_weights", (3, 2, 2, 12, 12 * 10**6), "<f4", zeros=64)
    _refused(write_npz(tmp_path / "huge.npz", members), "attn_weights has shape (3, 2, 2, 12, 12000000)")


def test_a_member_declaring_a_huge_unpacked_size_is_refused(tmp_path, run):
    for deflate in (False, True):
        members = members_of(run_arrays(run), deflate)
        members["W_query"].declared = 10**9          # the header is right; the zip says 1 GB
        _refused(write_npz(tmp_path / f"lie{deflate}.npz", members), "W_query says it unpacks to 1000000000 bytes")


def test_a_bomb_that_matches_its_settings_is_refused_by_its_compression_ratio(tmp_path, run):
    """Settings that imply 100 MiB of attention weights, and those weights as deflated zeros (0.1 MB)."""
    s = {**run.settings.to_dict(), "seq_len": 128, "d_model": 256, "num_heads": 16, "num_layers": 8,
         "steps": 8, "snapshot_every": 4}
    S, L, h, T, d = 3, 8, 16, 256, 256
    arrays = run_arrays(run)
    members = members_of({"meta": meta_array(s, ["t"] * T), "step": np.arange(S, dtype=np.int64),
                          **{k: arrays[k] for k in ("history_loss", "history_first", "history_second")},
                          **{k: np.zeros(S) for k in ("loss", "loss_first", "loss_second", "accuracy")},
                          "scores": np.zeros((S, L, h), np.float32), "b_out": np.zeros((S, L, d), np.float32)})
    members["attn_weights"] = Member("attn_weights", (S, L, h, T, T), "<f4", zeros=S * L * h * T * T * 4,
                                     deflate=True)
    for k in ("W_query", "W_key", "W_value", "W_out"):
        members[k] = Member(k, (S, L, d, d), "<f4", zeros=S * L * d * d * 4, deflate=True)
    members["layer_inputs"] = Member("layer_inputs", (S, L, T, d), "<f4", zeros=S * L * T * d * 4, deflate=True)
    bomb = write_npz(tmp_path / "ratio.npz", members)
    assert bomb.stat().st_size < 2 * MiB
    _refused(bomb, "no run compresses so well")


def test_a_run_larger_than_the_memory_allowed_for_it_is_refused(tmp_path, run, monkeypatch):
    path = save_run(run, tmp_path / "run.npz")
    monkeypatch.setattr(runfile, "MAX_RUN_BYTES", 10_000)
    _refused(path, "would take 0 MiB of memory; at most 0 MiB are free for a run")


@pytest.mark.parametrize("name, dtype, match", [
    ("attn_weights", "|O", "attn_weights holds object, expected float32 or float64"),
    ("W_key", "<c16", "W_key holds complex128"),
    ("step", "<f8", "step holds float64, expected int64 or int32"),
    ("loss", ">f8", "loss holds >f8"),
    ("meta", "<i8", "no run header"),
])
def test_an_array_of_another_dtype_is_refused_by_name(tmp_path, run, name, dtype, match):
    members = members_of(run_arrays(run))
    shape = members[name].shape
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize if dtype != "|O" else 8
    members[name] = Member(name, shape, dtype, zeros=n)
    _refused(write_npz(tmp_path / "dtype.npz", members), match.replace(">f8", str(np.dtype(">f8"))))


def test_a_zip_directory_of_thousands_of_entries_is_refused_before_it_is_parsed(tmp_path, run):
    members = list(members_of(run_arrays(run)).values()) + [Member(f"x{i}", (0,)) for i in range(5000)]
    _refused(write_npz(tmp_path / "many.npz", members), "its zip directory lists 5017 entries")


def test_an_array_named_twice_is_refused(tmp_path, run):
    members = list(members_of(run_arrays(run)).values())
    with pytest.warns(UserWarning, match="Duplicate name"):
        write_npz(tmp_path / "twice.npz", members + [Member("W_out", (1,), "<f4", zeros=4)])
    _refused(tmp_path / "twice.npz", "names an array twice")


def test_a_fifo_is_refused_without_waiting(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    import threading
    import time
    pipe = tmp_path / "pipe.npz"
    os.mkfifo(pipe)
    done = threading.Event()

    def release():          # if the reader waits on the pipe, a writer ends that after 10 s
        if not done.wait(10):
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
    threading.Thread(target=release, daemon=True).start()
    start = time.perf_counter()
    try:
        _refused(pipe, "it is not a regular file")
    finally:
        done.set()
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("tokens, match", [
    (lambda T: [""] * T, "probe token 1 is empty; every token needs a name"),
    (lambda T: ["a"] * (T - 1) + [" "], f"probe token 12 is empty"),
    (lambda T: ["x" * 200_000] + ["a"] * (T - 1), "probe token 1 is 200000 characters long; the limit is 200"),
    (lambda T: ["a", "b\nc"] + ["a"] * (T - 2), "probe token 2 contains a line break"),
    (lambda T: ["a", "\ud800"] + ["a"] * (T - 2), "probe token 2 contains a lone surrogate U+D800"),
    (lambda T: [7] * T, "probe token 1 must be text, got int"),
    (lambda T: ["a"] * (T + 1), "the probe has 13 tokens; the settings mean 12"),
    (lambda T: "abc", "probe_tokens must be a list of token names, got str"),
])
def test_probe_tokens_are_checked_as_typed_token_labels_are(tmp_path, run, tokens, match):
    arrays = run_arrays(run)
    meta = json.loads(str(arrays["meta"]))
    meta["probe_tokens"] = tokens(run.settings.context_length)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "tokens.npz", **arrays)
    _refused(tmp_path / "tokens.npz", match)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_a_saved_run_gets_the_permissions_the_umask_gives_other_files(tmp_path, run, mask):
    old = os.umask(mask)
    try:
        path = save_run(run, tmp_path / "run.npz")
        (tmp_path / "other.txt").write_text("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o666 & ~mask == stat.S_IMODE((tmp_path / "other.txt").stat().st_mode)


def test_a_file_name_with_a_line_break_is_still_one_line(tmp_path):
    bad = tmp_path / "two\nlines.npz"
    bad.write_bytes(b"not a zip")
    _refused(bad, "cannot read two lines.npz")


def test_a_link_is_refused_where_links_are_not_followed(tmp_path, run):
    save_run(run, tmp_path / "real.npz")
    (tmp_path / "link.npz").symlink_to("real.npz")
    assert load_run(tmp_path / "link.npz").history_loss == run.history_loss
    with pytest.raises(RunFileError, match="cannot read link.npz: it is a symbolic link"):
        load_run(tmp_path / "link.npz", follow_symlinks=False)
