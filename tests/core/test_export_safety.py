"""Export safety (issue 6): what is written reads back bit-for-bit, and an export that is
cancelled or fails midway leaves its target exactly as it was: same listing, same bytes, no
half-written files and no hidden ``.partial-``/``.backup-`` folders beside it.
"""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core.export
from core import AttentionConfig, build_trace
from core.export import (ExportCancelled, ExportError, count_slices, export_trace, read_csv_slice,
                         write_matrix_csv, write_text_atomic)
from core.safe_folder import WORK_PREFIX, sweep
from tests.core.snapshots import existing_target, fail_nth_file_write, hashes, snapshot

DISK_FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fail_nth(real, n: int, error: BaseException, *, and_after: bool = False):
    """``real`` whose n-th call (1-based) raises ``error`` (and every later one with and_after)."""
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n or (and_after and calls["n"] > n):
            raise error
        return real(*args, **kwargs)

    return wrapped


CONFIGS = {
    "book": AttentionConfig(device="cpu"),
    "batch-heads-bias": AttentionConfig(device="cpu", batch=2, d_out=4, num_heads=2, qkv_bias=True,
                                        dropout=0.5, init="rand"),
    "odd-labels": AttentionConfig(device="cpu", embeddings="random", d_in=4, d_out=3, num_heads=3,
                                  text='Say "hi", you —  it\'s 1,5 € ; "quoted" \t x x x'),
}


@pytest.fixture(scope="module")
def traces():
    return {k: build_trace(c) for k, c in CONFIGS.items()}


def assert_round_trip(trace, out: Path) -> int:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert {(e["stage"], e["name"]) for e in manifest["tensors"]} == {it.key for it in trace}
    assert len(manifest["tensors"]) == count_slices(trace)
    for entry in manifest["tensors"]:
        item = trace[entry["stage"], entry["name"]]
        expected = np.atleast_2d(item.numpy()[tuple(entry["index"])])
        rows, cols, values = read_csv_slice(out / entry["file"], dtype=expected.dtype)
        assert values.dtype == expected.dtype
        assert values.shape == expected.shape, entry["file"]
        # bit for bit: the same bits (−0.0, −inf and subnormals included)
        bits = np.uint32 if expected.dtype == np.float32 else np.uint64
        assert np.array_equal(values.view(bits), expected.view(bits)), entry["file"]
        assert tuple(cols) == item.labels[-1]
        if len(entry["shape"]) >= 2:
            assert tuple(rows) == item.labels[-2]
        else:                                   # a 1-D slice (a bias, one head's bias): one row named after it
            assert tuple(rows) == (item.name,)
    return len(manifest["tensors"])


# ----------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("name", list(CONFIGS))
def test_export_reads_back_bit_for_bit(name, traces, tmp_path):
    trace = traces[name]
    out = export_trace(trace, tmp_path / "out")
    assert assert_round_trip(trace, out) == count_slices(trace)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing hidden left beside it


def test_float64_reads_back_bit_for_bit(tmp_path):
    trace = build_trace(AttentionConfig(device="cpu", dtype="float64", batch=3, d_out=6, num_heads=3))
    assert_round_trip(trace, export_trace(trace, tmp_path / "out"))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(T=st.integers(1, 8), d_in=st.integers(1, 4), heads=st.integers(1, 3), mult=st.integers(1, 2),
       batch=st.integers(1, 2), seed=st.integers(0, 10**6), causal=st.booleans(), bias=st.booleans(),
       dropout=st.sampled_from([0.0, 0.3]), init=st.sampled_from(["rand", "linear"]))
def test_random_configs_read_back_bit_for_bit(tmp_path_factory, T, d_in, heads, mult, batch, seed, causal, bias,
                                              dropout, init):
    cfg = AttentionConfig(device="cpu", embeddings="random", text=" ".join(f"t{i}" for i in range(T)), d_in=d_in,
                          d_out=heads * mult, num_heads=heads, batch=batch, seed=seed, causal=causal,
                          qkv_bias=bias, dropout=dropout, init=init)
    trace = build_trace(cfg)
    assert_round_trip(trace, export_trace(trace, tmp_path_factory.mktemp("rt") / "out"))


def test_export_into_a_folder_with_other_files_keeps_them(traces, tmp_path):
    target = existing_target(tmp_path)
    export_trace(traces["book"], target)
    assert (target / "notes.txt").read_text() == "my notes\n"
    assert (target / "causal" / "mine.csv").read_text() == "keep,me\n"
    assert (target / "causal" / "mask.csv").read_text() != "an older export\n"  # replaced by the new export
    assert_round_trip(traces["book"], target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


# ----------------------------------------------------------------------------- cancelled

def cancel_after(polls: int):
    state = {"n": 0}

    def cancelled() -> bool:
        state["n"] += 1
        return state["n"] > polls

    cancelled.state = state
    return cancelled


@pytest.mark.parametrize("fmt", ["csv", "npy", "npz"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-target", "existing-target"])
@pytest.mark.parametrize("polls", [0, 1, 7, "last"])
def test_cancelled_export_leaves_the_target_as_it_was(fmt, existing, polls, traces, tmp_path):
    trace = traces["batch-heads-bias"]
    if polls == "last":
        polls = (count_slices(trace) if fmt == "csv" else len(list(trace))) - 1
    target = existing_target(tmp_path) if existing else tmp_path / "target"
    before = snapshot(tmp_path)
    progress = []
    # cancel once `polls` files are done (polled between files and between chunks of a file)
    with pytest.raises(ExportCancelled):
        export_trace(trace, target, fmt=fmt, progress=lambda d, t: progress.append(d),
                     cancelled=lambda: len(progress) >= polls)
    assert snapshot(tmp_path) == before
    assert len(progress) == polls  # it stopped before the next file


def test_cancel_callback_that_raises_leaves_the_target_as_it_was(traces, tmp_path):
    target = existing_target(tmp_path)
    before = snapshot(tmp_path)

    def broken():
        raise RuntimeError("the GUI went away")

    with pytest.raises(RuntimeError):
        export_trace(traces["book"], target, cancelled=broken)
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- failures

@pytest.mark.parametrize("existing", [False, True], ids=["new-target", "existing-target"])
@pytest.mark.parametrize("nth", [1, 2, 20, "manifest"])
def test_write_failure_midway_leaves_the_target_as_it_was(existing, nth, traces, tmp_path, monkeypatch):
    trace = traces["batch-heads-bias"]
    if nth == "manifest":
        nth = count_slices(trace) + 1  # the manifest is written last
    target = existing_target(tmp_path) if existing else tmp_path / "target"
    before = snapshot(tmp_path)
    fail_nth_file_write(monkeypatch, nth, DISK_FULL)
    with pytest.raises(ExportError, match="No space left on device"):
        export_trace(trace, target)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_numpy_write_failure_leaves_the_target_as_it_was(fmt, traces, tmp_path, monkeypatch):
    target = existing_target(tmp_path)
    before = snapshot(tmp_path)
    # the 3rd .npy file, or the 3rd array inside trace.npz
    monkeypatch.setattr(core.export, "write_npy", fail_nth(core.export.write_npy, 3, DISK_FULL))
    with pytest.raises(ExportError):
        export_trace(traces["book"], target, fmt=fmt)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("existing", [False, True], ids=["new-target", "existing-target"])
@pytest.mark.parametrize("nth", [1, 2, 3, 4, 25, 43])
def test_rename_failure_midway_rolls_back(existing, nth, traces, tmp_path, monkeypatch):
    """The n-th rename while moving files into place fails: the moved files are taken back
    and the replaced ones restored."""
    target = existing_target(tmp_path) if existing else tmp_path / "target"
    before = snapshot(tmp_path)
    monkeypatch.setattr(core.export.os, "replace", fail_nth(os.replace, nth, DISK_FULL))
    with pytest.raises(ExportError, match="No space left on device"):
        export_trace(traces["book"], target)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("nth", [2, 30])
def test_interrupt_while_moving_rolls_back(nth, traces, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) in the middle of moving files into place: rolled back too."""
    target = existing_target(tmp_path)
    before = snapshot(tmp_path)
    monkeypatch.setattr(core.export.os, "replace", fail_nth(os.replace, nth, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        export_trace(traces["book"], target)
    assert snapshot(tmp_path) == before


def test_interrupt_while_writing_leaves_nothing(traces, tmp_path, monkeypatch):
    target = existing_target(tmp_path)
    before = snapshot(tmp_path)
    fail_nth_file_write(monkeypatch, 5, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        export_trace(traces["book"], target)
    assert snapshot(tmp_path) == before


def test_a_file_that_cannot_be_put_back_is_kept_not_deleted(traces, tmp_path, monkeypatch):
    """If renames keep failing even while rolling back, the earlier export's files stay in the
    work folder's old/ (named in the message) instead of being deleted, and the next export
    (its sweep) puts them back."""
    target = existing_target(tmp_path)
    original = snapshot(target)
    # renames: 1 the journal, 2 old manifest.json -> old/, 3 (causal/mask.csv) and later fail (the undo too)
    monkeypatch.setattr(core.export.os, "replace", fail_nth(os.replace, 3, DISK_FULL, and_after=True))
    with pytest.raises(ExportError) as info:
        export_trace(traces["book"], target)
    message = str(info.value)
    assert WORK_PREFIX in message and "could not be put back" in message
    backup = Path(message.rsplit("they are in ", 1)[1].split(" (the next export")[0])
    assert backup.is_dir() and backup.parent.parent == target
    recovered = {**snapshot(target), **{k: v for k, v in snapshot(backup).items() if v is not None}}
    for rel, content in original.items():
        assert recovered.get(rel) == content, f"{rel} was lost"
    monkeypatch.undo()
    assert any("undid its switch-over" in line for line in sweep(target))
    assert snapshot(target) == original


def test_target_is_a_file(traces, tmp_path):
    (tmp_path / "target").write_text("keep me\n")
    before = snapshot(tmp_path)
    with pytest.raises(ExportError, match="is a file"):
        export_trace(traces["book"], tmp_path / "target")
    assert snapshot(tmp_path) == before


def test_failed_export_removes_created_parent_folders(traces, tmp_path, monkeypatch):
    before = snapshot(tmp_path)
    fail_nth_file_write(monkeypatch, 2, DISK_FULL)
    with pytest.raises(ExportError):
        export_trace(traces["book"], tmp_path / "a" / "b" / "target")
    assert snapshot(tmp_path) == before


def test_cancelled_export_removes_created_parent_folders(traces, tmp_path):
    before = snapshot(tmp_path)
    with pytest.raises(ExportCancelled):
        export_trace(traces["book"], tmp_path / "a" / "b" / "target", cancelled=cancel_after(3))
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- single files

def test_single_matrix_csv_failure_keeps_the_old_file(traces, tmp_path, monkeypatch):
    path = tmp_path / "weights.csv"
    path.write_text("old\n")
    item = traces["book"]["causal", "attn_weights"]
    monkeypatch.setattr(core.export.os, "replace", fail_nth(os.replace, 1, DISK_FULL))
    with pytest.raises(ExportError, match="No space left on device"):
        write_matrix_csv(item, [], path)
    assert snapshot(tmp_path) == {"weights.csv": b"old\n"}
    monkeypatch.undo()
    write_matrix_csv(item, [], path)
    _, _, values = read_csv_slice(path)
    assert np.array_equal(values.view(np.uint32), item.numpy().view(np.uint32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.csv"]


def test_single_file_onto_a_folder_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        write_text_atomic(tmp_path / "d", "x")
    assert snapshot(tmp_path) == {"d": None}


# ----------------------------------------------------------------------------- cancel inside one file (issue 19)

@pytest.mark.parametrize("fmt", ["csv", "npy", "npz"])
def test_a_cancel_during_one_large_file_stops_before_it_is_finished(fmt, traces, tmp_path, monkeypatch):
    """Cause 11: the cancel is polled between chunks in every writer, not only between files: a
    cancel that comes while the first file is being written stops the export there (no file
    reported done) and every file of the target is byte-identical afterwards."""
    import core.csv_writer
    monkeypatch.setattr(core.csv_writer, "CHUNK_CELLS", 2)        # a few rows per chunk
    monkeypatch.setattr(core.export, "NPY_CHUNK_BYTES", 8)       # two float32 per chunk
    target = existing_target(tmp_path)
    before = hashes(tmp_path)
    progress, polls = [], {"n": 0}

    def cancelled() -> bool:   # the second poll: the first one inside the first file
        polls["n"] += 1
        return polls["n"] >= 2

    with pytest.raises(ExportCancelled):
        export_trace(traces["batch-heads-bias"], target, fmt=fmt, progress=lambda d, t: progress.append(d),
                     cancelled=cancelled)
    assert progress == [] and polls["n"] == 2
    assert hashes(tmp_path) == before


@pytest.mark.parametrize("shape, dtype", [((3, 4), np.float32), ((2, 3, 5), np.float64), ((0, 3), np.float32),
                                          ((), np.float32), ((70,), np.float32)])
def test_npy_written_in_chunks_is_what_np_save_writes(shape, dtype, tmp_path, monkeypatch):
    import io
    monkeypatch.setattr(core.export, "NPY_CHUNK_BYTES", 16)
    arr = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    ours, theirs = io.BytesIO(), io.BytesIO()
    core.export.write_npy(ours, arr, check=lambda: None)
    np.save(theirs, arr)
    assert ours.getvalue() == theirs.getvalue()
