"""Shared helpers of the GUI tests (imported by test modules and conftest; no tests here).

Opening the real window (:func:`open_window`), independent references of what a step's maps
must show (:func:`expected_maps`, from the core), what the step view shows (:func:`shown_maps`),
and the learner's gestures: go to a step, find a shown matrix, click a cell, wait for a trace.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PySide6 import QtCore

ROOT = Path(__file__).resolve().parents[2]
TRACE_TIMEOUT_MS = 60_000


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
    if panel.diff:
        arr = arr - trace[panel.diff[1]].numpy().astype(np.float64)
    axes = list(item.axes)
    if len([a for a in axes if a not in ("batch", "head")]) == 1:     # biases: one row
        arr, axes = arr[..., None, :], axes[:-1] + ["name"] + axes[-1:]
    slices = [arr]
    if axes[0] == "batch":
        slices = list(arr) if panel.grid == "batch" else [arr[batch_index]]
        axes = axes[1:]
    if axes[0] == "head":
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
