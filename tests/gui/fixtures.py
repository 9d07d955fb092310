"""Shared helpers of the GUI tests (imported by test modules and conftest; no tests here).

Opening the real window (:func:`open_window`), independent references of what a step's maps
must show (:func:`expected_maps`, from the core), what the step view shows (:func:`shown_maps`),
and the learner's gestures: go to a step, find a shown matrix, click a cell, wait for a trace.
"""
from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6 import QtCore, QtTest, QtWidgets

from tests.core.snapshots import fail_nth, snapshot

ROOT = Path(__file__).resolve().parents[2]
TRACE_TIMEOUT_MS = 60_000
READ_ONLY = PermissionError(errno.EACCES, os.strerror(errno.EACCES))
DISK_FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
GOOD = dict(embeddings="random", text="the cat sat on the mat", d_in=4, d_out=4, num_heads=2, seed=5)


def open_window(qtbot, settings_file):
    """The real window on the given settings file, once every book section is computed."""
    from gui.app import make_window, start
    controller, win = make_window(QtCore.QSettings(settings_file, QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.resize(1400, 860)
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(controller.trace_changed, timeout=TRACE_TIMEOUT_MS):
        start(win, controller)
    # the book's first section arrives first; wait for the other sections too
    qtbot.waitUntil(lambda: not controller.is_busy(), timeout=TRACE_TIMEOUT_MS)
    win.activateWindow()
    return controller, win


def run_python(code: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter at the repository root (offscreen Qt)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ---- references --------------------------------------------------------------------------
MASKED = {"masked_scores", "attn_weights", "masked_simple", "renormalized_weights", "dropped_weights"}


def expected_maps(panel, trace, batch_index: int = 0) -> list[np.ndarray]:
    """The display arrays of one panel: one per head (or batch item), masked cells NaN."""
    item = trace[panel.key]
    arr = item.numpy().astype(np.float64)
    if getattr(panel, "merge", False):       # the heads' columns side by side: (T, h·hd)
        heads = arr[batch_index] if item.axes[0] == "batch" else arr
        return [np.concatenate(list(heads), axis=1).astype(np.float32)]
    if panel.diff:
        arr = arr - trace[panel.diff[1]].numpy().astype(np.float64)
    axes = list(item.axes)
    if len([a for a in axes if a not in ("batch", "head", "group", "position")]) == 1:     # biases: one row
        arr, axes = arr[..., None, :], axes[:-1] + ["name"] + axes[-1:]
    slices = [arr]
    if axes[0] == "batch":
        slices = list(arr) if panel.grid == "batch" else [arr[batch_index]]
        axes = axes[1:]
    if axes[0] in ("head", "group", "position"):   # group: the decode stage's K/V heads; position: RoPE's pairs
        slices = [h for s in slices for h in s]
    out = []
    for s in slices:
        s = np.array(s, dtype=np.float32)
        if (item.name in MASKED and item.stage in ("causal", "multihead") and trace.config.causal
                and tuple(item.axes[-2:]) == ("query", "key")):
            s[np.triu(np.ones(s.shape, dtype=bool), 1)] = np.nan
        s[~np.isfinite(s)] = np.nan
        if panel.rows:
            s = s[panel.rows[0]:panel.rows[1]]
        out.append(s)
    return out


def shown_maps(step_view) -> list[list[np.ndarray]]:
    """The arrays in the ImageItems of every panel of the step view."""
    return [[m.image.image for m in p.maps] for p in step_view.panels]


# ---- steps and gestures --------------------------------------------------------------------
def step_index(controller, step_id: str) -> int:
    return next(i for i, s in enumerate(controller.steps) if s.id == step_id)


def panel_data(win, name: str, stage: str | None = None):
    """The shown matrix ``name`` (of ``stage``) of the current step."""
    for d in win.controller.model.shown:
        if d.key[1] == name and (stage is None or d.key[0] == stage):
            return d
    raise AssertionError(f"{name} not shown; shown: {[d.key for d in win.controller.model.shown]}")


def go_to(window, qtbot, step_id: str) -> None:
    c = window.controller
    c.go(next(i for i, s in enumerate(c.steps) if s.id == step_id))
    qtbot.waitUntil(lambda: c.trace is not None and not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    window.step_view.refresh()


def shown(window, stage: str, name: str):
    """(panel, data) of the shown matrix stage.name (not a difference panel)."""
    sv = window.step_view
    for panel, data in zip(sv.panels, sv.datas):
        if data.key == (stage, name) and data.extra.get("max_abs_diff") is None:
            return panel, data
    raise AssertionError(f"{stage}.{name} not shown; shown: {[d.key for d in sv.datas]}")


def click_cell(qtbot, panel, row: int, col: int, map_index: int = 0) -> None:
    """A real mouse click in the middle of a heatmap cell (once the panel is laid out)."""
    from PySide6 import QtWidgets
    QtWidgets.QApplication.processEvents()
    vb = panel.maps[map_index].plot.vb
    scene = vb.mapViewToScene(QtCore.QPointF(col + 0.5, row + 0.5))
    pos = panel.mapFromScene(scene)
    qtbot.mouseClick(panel.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)


def wait_trace(window, qtbot, action) -> None:
    """Run ``action`` and wait for the trace it asks for."""
    c = window.controller
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        action()
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)


def open_editor(window):
    """The Edit inputs dock, shown (its tables fill when they are on screen)."""
    dock = window.docks["inputs"]
    dock.show()
    dock.raise_()
    editor = window.inputs_editor
    if editor._stale:
        editor.refresh()
    return editor


def export_all(window, qtbot) -> str:
    """File → Export all as CSV; the finished job's message."""
    with qtbot.waitSignal(window.export_finished, timeout=60_000) as blocker:
        window.actions["export_all"].trigger()
    return blocker.args[0]


# ---- the bad-input catalogue: the last good trace stays, the message is shown -----------------
def wait_until(condition, timeout_ms: int = TRACE_TIMEOUT_MS) -> None:
    deadline = QtCore.QDeadlineTimer(timeout_ms)
    while not condition():
        assert not deadline.hasExpired(), "timed out"
        QtTest.QTest.qWait(5)


def screen(win) -> SimpleNamespace:
    """What the window shows now: trace, step, counter and every map's image (copied)."""
    c = win.controller
    return SimpleNamespace(trace=c.trace, index=c.index, counter=win.step_bar.counter.text(),
                           maps=[[np.array(img, copy=True) for img in p] for p in shown_maps(win.step_view)])


def assert_kept(win, qtbot, before: SimpleNamespace) -> None:
    """The last good trace is still the one drawn, with exactly the same numbers."""
    c = win.controller
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert c.trace is before.trace
    assert c.index == before.index and win.step_bar.counter.text() == before.counter
    now = shown_maps(win.step_view)
    assert len(now) == len(before.maps)
    for imgs, old in zip(now, before.maps):
        assert len(imgs) == len(old)
        for img, o in zip(imgs, old):
            np.testing.assert_array_equal(img, o)
    # and those are the core's numbers for that trace
    panels = [p for p in c.step.panels if p.key in before.trace]
    for panel, imgs in zip(panels, now):
        for img, exp in zip(imgs, expected_maps(panel, before.trace)):
            np.testing.assert_array_equal(img, exp)
    assert win.isVisible()


def shown_error(win, field: str) -> str:
    """The message next to the control of ``field`` ('' = the panel's general line)."""
    p = win.params
    label = p.errors.get({"embeddings": "text"}.get(field, field), p.general_error)
    assert label.isVisibleTo(win), f"no message shown for {field!r}"
    return label.text()


def no_traceback(capfd) -> None:
    _out, err = capfd.readouterr()
    assert "Traceback" not in err, err


def type_into_spin(qtbot, spin, text: str) -> None:
    """Type ``text`` into a spin box as a learner would (select all, type, Return)."""
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClick(spin.lineEdit(), QtCore.Qt.Key.Key_Backspace)
    qtbot.keyClicks(spin.lineEdit(), text)
    qtbot.keyClick(spin.lineEdit(), QtCore.Qt.Key.Key_Return)


def set_text(qtbot, win, text: str) -> None:
    """Type (or, past 200 characters, paste) ``text`` into the parameter panel's text field."""
    field = win.params.text
    field.setFocus()
    field.selectAll()
    if len(text) > 200:
        field.insert(text)          # a paste
    else:
        field.del_()
        qtbot.keyClicks(field, text)
    qtbot.keyClick(field, QtCore.Qt.Key.Key_Return)


# the embeddings CSVs of tests.core.snapshots.make_input_files: (name, field, words of the message)
CSV_ROWS = [
    ("missing", "embeddings", "does not exist"),
    ("folder", "embeddings", "is not a file"),
    ("empty", "embeddings", "is empty; expected rows of 'token, v1, v2, …'"),
    ("blank_lines", "embeddings", "is empty"),
    ("header_only", "embeddings", "has a header but no token rows"),
    ("ragged", "embeddings", "line 2 has 1 values, line 1 has 2; every row needs the same number"),
    ("non_number", "embeddings", "line 2, column 3: 'x' is not a number"),
    ("nan", "embeddings", "line 1, column 3: nan is not a finite number"),
    ("inf", "embeddings", "line 2, column 2: inf is not a finite number"),
    ("minus_inf", "embeddings", "line 1, column 2: -inf is not a finite number"),
    ("no_label", "embeddings", "line 2 has no token label"),
    ("latin1", "embeddings", "cannot be read"),
    ("huge_value", "embeddings", "between -1e+06 and 1e+06"),
    ("width2", "d_in", "the embeddings CSV has 2 values per token but d_in is 4; set d_in to 2"),
]


def no_partials(root: Path) -> None:
    """No temporary or backup file of an atomic write is left under ``root``."""
    from core.safe_folder import WORK_PREFIX
    left = [p for p in root.rglob("*") if ".partial-" in p.name or ".backup-" in p.name or p.name.endswith(".tmp")
            or p.name.startswith(WORK_PREFIX)]
    assert left == []


def bad_file_target(tmp_path, monkeypatch, kind: str, name: str):
    """A Save dialog answering a file under tmp/exports that is a folder, read-only or on a full disk."""
    import core.export
    root = tmp_path / "exports"
    root.mkdir()
    target = root / name
    if kind == "folder":
        target.mkdir()
    else:
        target.write_text("old contents")
    before_files = snapshot(root)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))

    def refuse(*_a, **_k):
        raise READ_ONLY

    if kind == "read-only":
        monkeypatch.setattr(core.export.tempfile, "mkstemp", refuse)
    elif kind == "disk-full":
        monkeypatch.setattr(core.export.os, "replace", fail_nth(os.replace, 1, DISK_FULL))
    return root, target, before_files


def open_lesson_and_wait(window, qtbot, path, show_box: bool = True) -> str:
    """Open a lesson (read off the UI thread) and wait until it is applied or refused: "" or the message."""
    from gui.lessons import open_lesson
    done: list[str] = []
    open_lesson(window, str(path), show_box, on_done=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=TRACE_TIMEOUT_MS)
    return done[0]


@contextlib.contextmanager
def watched_fifo(path, payload: bytes, seconds: float = 20):
    """A named pipe at ``path``; if something opens it for reading (and so would hang), a writer
    unblocks it after ``seconds`` with ``payload`` (the test then fails on what it read)."""
    import os
    import threading
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    os.mkfifo(path)
    released = threading.Event()

    def release():
        if not released.wait(seconds):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                return
            os.write(fd, payload)
            os.close(fd)

    threading.Thread(target=release, daemon=True).start()
    try:
        yield path
    finally:
        released.set()
