"""gui/exporting.py: Export matrix, Export all (CSV, .npy, .npz, cancel), Save image;
a bad target (a file, read-only, a full disk, midway) gives a message and leaves no partial file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
import pytest

from core.export import read_csv_slice
from tests.core.snapshots import fail_nth as _fail_nth, fail_nth_file_write, snapshot
from tests.gui.fixtures import (assert_kept, go_to, bad_file_target, DISK_FULL, export_all, no_partials,
                                no_traceback, READ_ONLY, screen, step_index, TRACE_TIMEOUT_MS)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_matrix_writes_the_focused_matrix(window, qtbot, tmp_path, monkeypatch):
    c = window.controller
    c.go(step_index(c, "multihead.weights"))
    panel = window.step_view.panels[0]
    scene_pos = panel.maps[1].plot.vb.mapViewToScene(QtCore.QPointF(2.5, 3.5))   # head 1, row 3, col 2
    clicked = []
    c.model.cell_clicked.connect(lambda *args: clicked.append(args))
    qtbot.mouseClick(panel.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=panel.mapFromScene(scene_pos))
    qtbot.waitUntil(lambda: bool(clicked), timeout=3000)
    assert clicked[0][1:] == (1, 3, 2)
    assert c.model.focus == (0, 1)
    assert "▶ head 1" in panel.maps[1].plot.titleLabel.text
    target = tmp_path / "weights.csv"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.actions["export_matrix"].trigger()
    rows, cols, values = read_csv_slice(target)
    expected = c.trace["multihead", "attn_weights"].numpy()[0, 1]
    np.testing.assert_array_equal(values, expected)
    assert rows == list(c.trace.labels) and cols == list(c.trace.labels)
    assert str(target) in window.statusBar().currentMessage()


def test_export_all_matches_the_core_and_the_cli_layout(window, qtbot, tmp_path, monkeypatch):
    c = window.controller
    c.go(step_index(c, "trainable.scores"))
    out = tmp_path / "export"
    out.mkdir()
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    assert str(out) in export_all(window, qtbot)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"] == c.trace.config.to_dict()
    assert len(manifest["tensors"]) > 40
    for entry in manifest["tensors"]:
        _rows, _cols, values = read_csv_slice(out / entry["file"])
        arr = c.trace[entry["stage"], entry["name"]].numpy()
        arr = arr[tuple(entry["index"])] if entry["index"] else arr
        np.testing.assert_array_equal(values, arr.reshape(values.shape), err_msg=entry["file"])


def test_export_into_a_file_gives_a_message(window, qtbot, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(blocker))
    assert "Export failed" in export_all(window, qtbot)
    assert "Export failed" in window.statusBar().currentMessage()
    assert blocker.read_text() == "x"


def test_cancelled_export_leaves_the_folder_as_it_was(window, qtbot, tmp_path, monkeypatch):
    from gui.exporting import export_work
    from gui.tasks import Task
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    message = export_work((window.controller.trace, str(out), "csv"), Task(cancelled=lambda: True))   # before the first file
    assert "cancelled" in message
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_save_image_writes_a_png(window, tmp_path, monkeypatch):
    target = tmp_path / "step"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.actions["save_image"].trigger()
    img = QtGui.QImage(str(target) + ".png")
    assert not img.isNull() and img.width() > 300 and img.height() > 200


@pytest.mark.parametrize("fmt", ["csv", "npy", "npz"])
def test_cancelled_export_in_every_format_leaves_the_folder_as_it_was(window, qtbot, tmp_path, fmt):
    from gui.exporting import export_work
    from gui.tasks import Task
    target = tmp_path / "out"
    (target / "multihead").mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    (target / "multihead" / "attn_weights_h0.csv").write_text("an earlier export")
    before = _snapshot(target)
    siblings = sorted(p.name for p in tmp_path.iterdir())
    files = []
    task = Task(cancelled=lambda: bool(files), progress=files.append)          # cancelled after one file
    message = export_work((window.controller.trace, str(target), fmt), task)
    assert message == "Export cancelled; the folder was left as it was" and len(files) == 1
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings     # no staging folder left behind


def test_cancel_before_the_first_file_writes_nothing(window, tmp_path):
    from gui.exporting import export_work
    from gui.tasks import Task
    target = tmp_path / "fresh"
    message = export_work((window.controller.trace, str(target), "npy"), Task(cancelled=lambda: True))
    assert message == "Export cancelled; the folder was left as it was"
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_export_all_offers_numpy_formats(window, qtbot, tmp_path, monkeypatch):
    from PySide6 import QtWidgets
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "npy"))
    with qtbot.waitSignal(window.export_finished, timeout=TRACE_TIMEOUT_MS) as sig:
        window.actions["export_all_npy"].trigger()
    assert "NPY files" in sig.args[0]
    trace = window.controller.trace
    saved = np.load(tmp_path / "npy" / "multihead" / "attn_weights.npy")
    np.testing.assert_array_equal(saved, trace["multihead", "attn_weights"].numpy())
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "npz"))
    with qtbot.waitSignal(window.export_finished, timeout=TRACE_TIMEOUT_MS):
        window.actions["export_all_npz"].trigger()
    with np.load(tmp_path / "npz" / "trace.npz") as z:
        np.testing.assert_array_equal(z["causal/attn_weights"], trace["causal", "attn_weights"].numpy())
    assert "Export all as CSV…" in [a.text() for a in window.menuBar().actions()[0].menu().actions()]


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "folder-with-files"])
@pytest.mark.parametrize("kind", ["file", "read-only", "read-only-midway", "disk-full", "disk-full-on-rename"])
def test_export_all_to_a_bad_target(good, qtbot, capfd, tmp_path, monkeypatch, kind, existing):
    import core.export
    root = tmp_path / "exports"
    root.mkdir()
    target = root / "out"
    if kind == "file":
        target.write_text("mine")
    elif existing:
        target.mkdir()
        (target / "notes.txt").write_text("keep me")
    before_files = snapshot(root)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(target))

    def refuse(*_a, **_k):
        raise READ_ONLY

    if kind == "read-only":
        monkeypatch.setattr(core.export.tempfile, "mkdtemp", refuse)
    elif kind == "read-only-midway":
        fail_nth_file_write(monkeypatch, 7, READ_ONLY)
    elif kind == "disk-full":
        fail_nth_file_write(monkeypatch, 12, DISK_FULL)
    elif kind == "disk-full-on-rename":
        monkeypatch.setattr(core.export.os, "replace", _fail_nth(os.replace, 9, DISK_FULL))
    c, before = good.controller, screen(good)
    message = export_all(good, qtbot)
    words = {"file": "is a file; choose a folder to export into", "read-only": "Permission denied",
             "read-only-midway": "Permission denied", "disk-full": "No space left on device",
             "disk-full-on-rename": "No space left on device"}[kind]
    assert message.startswith("Export failed:") and words in message
    assert message in good.statusBar().currentMessage()
    assert snapshot(root) == before_files                    # exactly as it was: no partial files
    no_partials(tmp_path)
    assert good.export_job is None and good.busy_label.text() == ""
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


@pytest.mark.parametrize("kind", ["folder", "read-only", "disk-full"])
def test_export_matrix_to_a_bad_target(good, qtbot, capfd, tmp_path, monkeypatch, kind):
    root, target, before_files = bad_file_target(tmp_path, monkeypatch, kind, "weights.csv")
    before = screen(good)
    good.actions["export_matrix"].trigger()
    message = good.statusBar().currentMessage()
    words = {"folder": "is a folder; choose a file name", "read-only": "Permission denied",
             "disk-full": "No space left on device"}[kind]
    assert message.startswith("Export failed:") and words in message
    assert snapshot(root) == before_files
    no_partials(tmp_path)
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


@pytest.mark.parametrize("kind", ["read-only", "disk-full"])
def test_save_image_to_a_bad_target_leaves_no_partial_file(good, qtbot, capfd, tmp_path, monkeypatch, kind):
    import tempfile
    root = tmp_path / "images"
    root.mkdir()
    (root / "step.png").write_bytes(b"old image")
    before_files = snapshot(root)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(root / "step.png"), ""))

    def refuse(*_a, **_k):
        raise READ_ONLY

    if kind == "read-only":
        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        monkeypatch.setattr(os, "replace", _fail_nth(os.replace, 1, DISK_FULL))
    before = screen(good)
    good.actions["save_image"].trigger()
    message = good.statusBar().currentMessage()
    assert message.startswith("Could not save the image")
    assert ("Permission denied" if kind == "read-only" else "No space left on device") in message
    assert snapshot(root) == before_files
    no_partials(tmp_path)
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


def test_export_matrix_of_the_merged_heads_panel_writes_the_t_by_d_out_matrix(window, qtbot, tmp_path, monkeypatch):
    """4.4's first panel draws the per-head queries as the (T, d_out) matrix before the split:
    Export matrix writes that matrix (the soak found a TypeError here)."""
    c = window.controller
    go_to(window, qtbot, "multihead.split")
    data = c.model.shown[0]
    assert "merged_heads" in data.extra
    c.model.set_focus(0, 0)
    path = tmp_path / "merged.csv"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
    window.actions["export_matrix"].trigger()
    rows, cols, values = read_csv_slice(path)
    queries = c.trace["multihead", "queries"].numpy()                 # (b, h, T, hd) or (h, T, hd)
    q = queries[0] if queries.ndim == 4 else queries
    expected = q.transpose(1, 0, 2).reshape(q.shape[1], -1)            # (h, T, hd) -> (T, h·hd)
    assert rows == list(c.trace.tokens) and len(cols) == expected.shape[1]
    np.testing.assert_array_equal(values, expected)                    # 9 digits read back to the float32
