"""The bad-input catalogue in the window (issue 6): every row ends in a message next to its
control or in the status bar, the last good trace stays on screen (the displayed numbers are
exactly the previous ones), no traceback and no crash; exports leave no partial files.

Rows are driven through the widgets where the widgets let a learner type the value, and through
the controller API (what a lesson, saved settings or a script can hand over) for values the
widgets cannot produce.
"""
from __future__ import annotations

import errno
import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6 import QtCore, QtTest, QtWidgets

from core import build_trace
from tests.core.snapshots import snapshot
from tests.core.bad_files import fail_nth as _fail_nth, make_input_files
from tests.gui.conftest import TRACE_TIMEOUT_MS
from tests.gui.helpers import expected_maps, shown_maps
from tests.gui.test_window import step_index

READ_ONLY = PermissionError(errno.EACCES, os.strerror(errno.EACCES))
DISK_FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
GOOD = dict(embeddings="random", text="the cat sat on the mat", d_in=4, d_out=4, num_heads=2, seed=5)


# ----------------------------------------------------------------------------- helpers

def _wait_until(condition, timeout_ms: int = TRACE_TIMEOUT_MS) -> None:
    deadline = QtCore.QDeadlineTimer(timeout_ms)
    while not condition():
        assert not deadline.hasExpired(), "timed out"
        QtTest.QTest.qWait(5)


@pytest.fixture(scope="module")
def shared_window(qapp, tmp_path_factory):
    """One window for the whole catalogue (opening one per row would triple the run time)."""
    from gui.app import make_window, start
    settings = QtCore.QSettings(str(tmp_path_factory.mktemp("settings") / "stepper.ini"),
                                QtCore.QSettings.Format.IniFormat)
    controller, win = make_window(settings)
    win.resize(1400, 860)
    win.show()
    start(win, controller)
    _wait_until(lambda: controller.has_trace and not controller.is_busy())
    yield win
    win.close()


@pytest.fixture
def good(shared_window, qtbot):
    """The window on a multi-head step of a valid custom trace (the 'last good trace')."""
    win = shared_window
    c = win.controller
    for w in QtWidgets.QApplication.topLevelWidgets():        # dialogs a previous row left open
        if w is not win and w.isVisible() and isinstance(w, QtWidgets.QDialog):
            w.close()
    win.setFocus()
    win.params._typed.clear()
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.restore("custom", {**c.shown_config(), **GOOD, "device": "cpu", "dtype": "float32",
                             "batch": 1, "dropout": 0.0, "dropout_seed": 123, "init": "linear",
                             "causal": True, "qkv_bias": False})
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    c.go(step_index(c, "multihead.weights"))
    win.params.clear_errors()
    win.statusBar().clearMessage()
    assert c.trace.config.to_dict() == {**c.trace.config.to_dict(), **GOOD}
    return win


def screen(win) -> SimpleNamespace:
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


def set_spin(qtbot, spin, text: str) -> None:
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClick(spin.lineEdit(), QtCore.Qt.Key.Key_Backspace)
    qtbot.keyClicks(spin.lineEdit(), text)
    qtbot.keyClick(spin.lineEdit(), QtCore.Qt.Key.Key_Return)


def set_text(qtbot, win, text: str) -> None:
    field = win.params.text
    field.setFocus()
    field.selectAll()
    if len(text) > 200:
        field.insert(text)          # a paste
    else:
        field.del_()
        qtbot.keyClicks(field, text)
    qtbot.keyClick(field, QtCore.Qt.Key.Key_Return)


# ----------------------------------------------------------------------------- typed in the widgets

def test_d_out_not_divisible_by_heads(good, qtbot, capfd):
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        set_spin(qtbot, good.params.num_heads, "3")
    msg = shown_error(good, "num_heads")
    assert "d_out (4) must be divisible by num_heads (3)" in msg and "{1, 2, 4}" in msg
    assert "divisible" in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


@pytest.mark.parametrize("name", ["num_heads", "d_out", "d_in", "batch", "seed", "dropout_seed"])
@pytest.mark.parametrize("typed", ["0", "", "abc"])
def test_a_value_the_box_cannot_take_is_put_back_with_a_message(good, qtbot, capfd, name, typed):
    """0 (below the range), an emptied box or letters: Qt puts the old value back; we say why."""
    c, before = good.controller, screen(good)
    spin = good.params.widgets[name]
    old = spin.value()
    set_spin(qtbot, spin, typed)
    qtbot.wait(50)
    if name in ("seed", "dropout_seed") and typed == "0":       # 0 is a valid seed
        qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
        assert c.trace.config.to_dict()[name] == 0
        return
    assert spin.value() == old
    msg = shown_error(good, name)
    assert f"between {spin.minimum()} and {spin.maximum()}" in msg and f"kept {old}" in msg
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


@pytest.mark.parametrize("name, typed, shown", [
    ("num_heads", "-1", "1"),               # the minus sign is refused as it is typed
    ("seed", "-7", "7"),
    ("dropout_seed", "-5", "5"),
    ("num_heads", "99999", "99"),           # digits past the maximum are refused as typed
    ("d_out", "1000000000000", "1000"),
    ("d_in", "100000", "1000"),
    ("batch", "100000", "10"),
])
def test_negative_or_absurdly_large_never_reaches_the_config(good, qtbot, name, typed, shown):
    c = good.controller
    spin = good.params.widgets[name]
    set_spin(qtbot, spin, typed)
    assert spin.text() == shown
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert spin.minimum() <= spin.value() <= spin.maximum()
    assert c.params[name] == int(shown)
    if name != "num_heads" or GOOD["d_out"] % int(shown) == 0:
        assert c.trace.config.to_dict()[name] == int(shown)
    else:                                   # 99 heads do not divide d_out 4: a message, the trace kept
        assert "divisible" in shown_error(good, "num_heads")


@pytest.mark.parametrize("typed", ["1.5", "1", "-0.1", "nan", "inf"])
def test_dropout_box_stays_in_0_to_0_99(good, qtbot, typed):
    c = good.controller
    set_spin(qtbot, good.params.dropout, typed)
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    v = good.params.dropout.value()
    assert 0.0 <= v <= 0.99
    assert 0.0 <= c.trace.config.dropout < 1.0


@pytest.mark.parametrize("text", ["", "   ", "\t \t"])
def test_empty_or_whitespace_text(good, qtbot, capfd, text):
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        set_text(qtbot, good, text)
    assert "is empty; type at least one word" in shown_error(good, "text")
    assert "empty" in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


def test_text_over_the_token_limit(good, qtbot, capfd):
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        set_text(qtbot, good, "w " * 4097)
    assert "has 4097 tokens; the limit is 4096" in shown_error(good, "text")
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


# ----------------------------------------------------------------------------- through the controller

API_ROWS = [
    ("d_out 3, heads 2", dict(d_out=3, num_heads=2), "num_heads", "must be divisible by num_heads (2)"),
    ("heads 0", dict(num_heads=0), "num_heads", "between 1 and 256, got 0"),
    ("heads -1", dict(num_heads=-1), "num_heads", "between 1 and 256, got -1"),
    ("heads 512", dict(num_heads=512, d_out=512), "num_heads", "between 1 and 256, got 512"),
    ("d_in 0", dict(d_in=0), "d_in", "between 1 and 8192, got 0"),
    ("d_in -3", dict(d_in=-3), "d_in", "between 1 and 8192, got -3"),
    ("d_in 100000", dict(d_in=100000), "d_in", "between 1 and 8192, got 100000"),
    ("d_out 0", dict(d_out=0), "d_out", "between 1 and 8192, got 0"),
    ("d_out -2", dict(d_out=-2), "d_out", "between 1 and 8192, got -2"),
    ("d_out 1e12", dict(d_out=10**12), "d_out", "between 1 and 8192, got 1000000000000"),
    ("d_out 2.5", dict(d_out=2.5), "d_out", "must be a whole number, got 2.5"),
    ("batch 0", dict(batch=0), "batch", "between 1 and 64, got 0"),
    ("batch 100000", dict(batch=100000), "batch", "between 1 and 64, got 100000"),
    ("dropout nan", dict(dropout=math.nan), "dropout", "must be in [0, 1)"),
    ("dropout inf", dict(dropout=math.inf), "dropout", "must be in [0, 1)"),
    ("dropout 1.0", dict(dropout=1.0), "dropout", "must be in [0, 1)"),
    ("dropout 1.5", dict(dropout=1.5), "dropout", "must be in [0, 1)"),
    ("dropout -0.1", dict(dropout=-0.1), "dropout", "must be in [0, 1)"),
    ("dropout 'half'", dict(dropout="half"), "dropout", "must be a number in [0, 1)"),
    ("seed -1", dict(seed=-1), "seed", "between 0 and 9223372036854775807, got -1"),
    ("seed 2**70", dict(seed=2**70), "seed", "between 0 and 9223372036854775807"),
    ("dropout_seed -5", dict(dropout_seed=-5), "dropout_seed", "got -5"),
    ("text empty", dict(text=""), "text", "is empty; type at least one word"),
    ("text whitespace", dict(text=" \n\t "), "text", "is empty; type at least one word"),
    ("text over 100000 characters", dict(text="a" * 100_001), "text",
     "is 100001 characters long; the limit is 100000"),
    ("text over 4096 tokens", dict(text="w " * 4097), "text", "has 4097 tokens; the limit is 4096"),
    ("book embeddings, own text", dict(embeddings="book", text="hello there", d_in=3), "embeddings",
     "'book' has vectors only for the book's sentence"),
    ("init xavier", dict(init="xavier"), "init", "must be one of rand, linear; got 'xavier'"),
    ("device tpu", dict(device="tpu"), "device", "must be one of auto, cpu, cuda; got 'tpu'"),
    ("dtype float16", dict(dtype="float16"), "dtype", "must be one of float32, float64; got 'float16'"),
    ("unknown field", dict(colour="red"), "", "colour"),
]


@pytest.mark.parametrize("changes, field, words", [r[1:] for r in API_ROWS], ids=[r[0] for r in API_ROWS])
def test_bad_setting_through_the_controller(good, qtbot, capfd, changes, field, words):
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS) as blocker:
        c.set_params(**changes)
    assert blocker.args[0] == field
    assert words in shown_error(good, field)
    assert words in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    # going back to good settings brings a new trace and clears the message
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.restore("custom", before.trace.config.to_dict())
    assert not good.params.general_error.isVisibleTo(good)
    assert not any(label.isVisibleTo(good) for label in good.params.errors.values())
    no_traceback(capfd)


# ----------------------------------------------------------------------------- embeddings CSV

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


@pytest.mark.parametrize("name, field, words", CSV_ROWS, ids=[r[0] for r in CSV_ROWS])
def test_bad_embeddings_csv_as_the_embeddings_source(good, qtbot, capfd, tmp_path, name, field, words):
    """A CSV path as the embeddings setting (saved settings, a lesson, a script)."""
    files = make_input_files(tmp_path)
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS) as blocker:
        c.set_params(embeddings=files[name], **({} if name == "width2" else {"d_in": 2}))
    assert blocker.args[0] == field
    assert words in shown_error(good, field)
    assert words in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


IMPORT_ROWS = [r for r in CSV_ROWS if r[0] not in ("width2", "huge_value")]


@pytest.mark.parametrize("name, _field, words", IMPORT_ROWS, ids=[r[0] for r in IMPORT_ROWS])
def test_bad_embeddings_csv_in_edit_inputs_import(good, qtbot, capfd, tmp_path, monkeypatch, name, _field, words):
    """Edit inputs → Import CSV… (the file dialog patched): a message, nothing recomputed."""
    editor = getattr(good, "inputs_editor", None)
    if editor is None:
        pytest.skip("the window has no Edit inputs panel")
    files = make_input_files(tmp_path)
    c, before = good.controller, screen(good)
    messages = []
    editor.message.connect(messages.append)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (files[name], ""))
    busy = []
    c.busy.connect(busy.append)
    editor.buttons["import"].click()
    assert messages and messages[-1].startswith("Import failed:") and words in messages[-1]
    assert words in editor.note.text()
    assert busy == []                                  # nothing was recomputed
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


def test_embeddings_csv_of_another_width_imports_with_that_width(good, qtbot, tmp_path, monkeypatch):
    """Import is the one place a width ≠ d_in is no error: d_in follows the file."""
    editor = getattr(good, "inputs_editor", None)
    if editor is None:
        pytest.skip("the window has no Edit inputs panel")
    files = make_input_files(tmp_path)
    c = good.controller
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (files["width2"], ""))
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        editor.buttons["import"].click()
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert c.trace.config.d_in == 2 and c.trace.tokens == ("a", "b")
    assert good.params.d_in.value() == 2


# ----------------------------------------------------------------------------- device

def test_cuda_asked_for_where_there_is_none(good, qtbot, capfd, monkeypatch):
    import core.device
    monkeypatch.setattr(core.device, "cuda_available", lambda: False)
    c = good.controller
    with qtbot.waitSignal(c.notice, timeout=TRACE_TIMEOUT_MS) as note:
        c.set_params(device="cuda")
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert note.args[0] == "CUDA was requested but no CUDA GPU is available; computed on the CPU"
    assert "no CUDA GPU" in good.statusBar().currentMessage()
    assert c.trace.device == "cpu" and c.trace.config.device == "cuda"
    assert good.params.device.currentData() == "cpu"
    assert "CPU" in good.status_info.text()
    ref = build_trace(c.trace.config.replace(device="cpu"))
    for panel, imgs in zip([p for p in c.step.panels if p.key in ref], shown_maps(good.step_view)):
        for img, exp in zip(imgs, expected_maps(panel, ref)):
            np.testing.assert_array_equal(img, exp)
    no_traceback(capfd)


# ----------------------------------------------------------------------------- memory

HUGE = dict(embeddings="random", text=" ".join(["w"] * 4096), d_in=8192, d_out=8192, num_heads=256, batch=64)


def test_a_trace_too_big_for_memory_is_refused_before_allocating(good, qtbot, capfd, monkeypatch):
    import core.memory
    import core.trace
    calls = []
    monkeypatch.setattr(core.trace, "build_trace", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(core.memory, "available_bytes", lambda device="cpu": 16 * 2**30)
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS) as blocker:
        c.set_params(**HUGE)
    assert calls == []                                 # refused before anything was computed
    assert blocker.args[0] == ""
    msg = shown_error(good, "")
    assert "this trace needs about" in msg and "budget is 8.0 GiB" in msg and "reduce" in msg
    assert "needs about" in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


def _cpu_alloc_failure():
    return RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                        "memory: you tried to allocate 140737488355328 bytes. Error code 12")


@pytest.mark.parametrize("error, words", [
    (MemoryError, "out of memory while computing the trace"),
    (_cpu_alloc_failure(), "out of memory while computing the trace"),
    (None, "the GPU ran out of memory"),                    # torch.OutOfMemoryError
], ids=["MemoryError", "cpu-allocator", "torch.OutOfMemoryError"])
def test_out_of_memory_anyway_is_a_message(good, qtbot, capfd, monkeypatch, error, words):
    import torch

    import core.trace
    if error is None:
        error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def fail(*_a, **_k):
        raise error

    monkeypatch.setattr(core.trace, "build_trace", fail)
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        c.set_params(seed=6)                               # valid: the worker tries, allocation fails
    assert words in shown_error(good, "")
    assert words in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


# ----------------------------------------------------------------------------- exports

def export_all(win, qtbot) -> str:
    with qtbot.waitSignal(win.export_finished, timeout=60_000) as blocker:
        win.actions["export_all"].trigger()
    return blocker.args[0]


def _no_partials(root: Path) -> None:
    left = [p for p in root.rglob("*") if ".partial-" in p.name or ".backup-" in p.name or p.name.endswith(".tmp")]
    assert left == []


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
        monkeypatch.setattr(Path, "write_text", _fail_nth(Path.write_text, 7, READ_ONLY))
    elif kind == "disk-full":
        monkeypatch.setattr(Path, "write_text", _fail_nth(Path.write_text, 12, DISK_FULL))
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
    _no_partials(tmp_path)
    assert good.export_job is None and good.busy_label.text() == ""
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


def _bad_file_target(tmp_path, monkeypatch, kind: str, name: str):
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
        monkeypatch.setattr(core.export.os, "replace", _fail_nth(os.replace, 1, DISK_FULL))
    return root, target, before_files


@pytest.mark.parametrize("kind", ["folder", "read-only", "disk-full"])
def test_export_matrix_to_a_bad_target(good, qtbot, capfd, tmp_path, monkeypatch, kind):
    root, target, before_files = _bad_file_target(tmp_path, monkeypatch, kind, "weights.csv")
    before = screen(good)
    good.actions["export_matrix"].trigger()
    message = good.statusBar().currentMessage()
    words = {"folder": "is a folder; choose a file name", "read-only": "Permission denied",
             "disk-full": "No space left on device"}[kind]
    assert message.startswith("Export failed:") and words in message
    assert snapshot(root) == before_files
    _no_partials(tmp_path)
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
    _no_partials(tmp_path)
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


# ----------------------------------------------------------------------------- lesson files

def _lesson_files(root: Path) -> dict[str, tuple[Path, str]]:
    import json

    from core.config import AttentionConfig
    from core.lesson import Lesson
    good_json = json.loads(Lesson(AttentionConfig(**GOOD), step="trainable.scores").to_json())
    files = {
        "not JSON": ("{ this is not json", "is not valid JSON"),
        "not a lesson": (json.dumps({"hello": 1}), "is not an Attention Stepper lesson"),
        "future version": (json.dumps({**good_json, "version": 99}),
                           "was saved by a newer Attention Stepper (lesson version 99)"),
        "no version": (json.dumps({k: v for k, v in good_json.items() if k != "version"}), "no valid version"),
        "bad config": (json.dumps({**good_json, "config": {**good_json["config"], "num_heads": 3}}),
                       "must be divisible by num_heads (3)"),
        "ragged inputs": (json.dumps({**good_json, "inputs": {"tokens": ["a", "b"], "values": [[1, 2, 3, 4], [1]]}}),
                          "inputs"),
        "bad weights": (json.dumps({**good_json, "weights": {"W_query": [[1, 2]]}}), "W_query must be 4 × 4"),
        "nested": ("[" * 100_000 + "]" * 100_000, "lesson"),
    }
    out = {}
    for name, (text, words) in files.items():
        p = root / f"{name.replace(' ', '_')}.json"
        p.write_text(text, encoding="utf-8")
        out[name] = (p, words)
    out["missing"] = (root / "missing.json", "does not exist")
    out["folder"] = (root, "is a folder")
    return out


LESSON_ROWS = ["not JSON", "not a lesson", "future version", "no version", "bad config", "ragged inputs",
               "bad weights", "nested", "missing", "folder"]


@pytest.mark.parametrize("row", LESSON_ROWS)
def test_a_malformed_or_future_lesson_is_refused(good, qtbot, capfd, tmp_path, monkeypatch, row):
    if "open_lesson" not in good.actions:
        pytest.skip("the window has no File → Open lesson… action")
    path, words = _lesson_files(tmp_path)[row]
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    boxes = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "open", lambda self, *a: boxes.append(self.text()))
    monkeypatch.setattr(QtWidgets.QMessageBox, "exec", lambda self, *a: boxes.append(self.text()) or 0)
    c, before = good.controller, screen(good)
    mode, params, inputs, weights = c.mode, dict(c.params), c.inputs, dict(c.weights)
    good.actions["open_lesson"].trigger()
    assert words in good.statusBar().currentMessage()
    assert boxes and words in boxes[-1]
    assert (c.mode, c.params, c.inputs, c.weights) == (mode, params, inputs, weights)
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


@pytest.mark.parametrize("kind", ["folder", "read-only", "disk-full"])
def test_export_embeddings_csv_to_a_bad_target(good, qtbot, capfd, tmp_path, monkeypatch, kind):
    """Edit inputs → Export CSV…: a message, the old file kept, no temporary file left."""
    import core.export
    editor = getattr(good, "inputs_editor", None)
    if editor is None:
        pytest.skip("the window has no Edit inputs panel")
    root, target, before_files = _bad_file_target(tmp_path, monkeypatch, kind, "inputs.csv")
    messages = []
    editor.message.connect(messages.append)
    before = screen(good)
    editor.buttons["export"].click()
    words = {"folder": "is a folder; choose a file name", "read-only": "Permission denied",
             "disk-full": "No space left on device"}[kind]
    assert messages and messages[-1].startswith("Export failed:") and words in messages[-1]
    assert snapshot(root) == before_files
    _no_partials(tmp_path)
    assert_kept(good, qtbot, before)
    no_traceback(capfd)
