"""File menu: exports write the core's values; Save image writes a PNG; Ctrl+Q quits cleanly."""
from __future__ import annotations

import json

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core.export import read_csv_slice
from tests.gui.test_window import step_index


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


def export_all(window, qtbot) -> str:
    with qtbot.waitSignal(window.export_finished, timeout=60_000) as blocker:
        window.actions["export_all"].trigger()
    return blocker.args[0]


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
    from gui.exporting import ExportJob
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    job = ExportJob(window.controller.trace, str(out))
    job.cancel()                                   # cancelled before the first file
    with qtbot.waitSignal(job.finished_with, timeout=60_000) as blocker:
        job.start()
    job.wait()
    assert "cancelled" in blocker.args[0]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_cancelled_dialogs_do_nothing(window, monkeypatch):
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: ("", ""))
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    for name in ("export_matrix", "export_all", "save_image"):
        window.actions[name].trigger()


def test_save_image_writes_a_png(window, tmp_path, monkeypatch):
    target = tmp_path / "step"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.actions["save_image"].trigger()
    img = QtGui.QImage(str(target) + ".png")
    assert not img.isNull() and img.width() > 300 and img.height() > 200


def test_menus_carry_shortcuts(window):
    acts = window.actions
    assert acts["quit"].shortcut() == QtGui.QKeySequence("Ctrl+Q")
    for name in ("export_matrix", "export_all", "save_image", "next", "back", "first", "last", "book",
                 "open_lesson", "save_lesson", "show_inspector", "show_code", "edit_inputs",
                 "show_equivalences", "show_scaling", "font_larger", "font_smaller", "play"):
        assert not acts[name].shortcut().isEmpty(), name
        assert acts[name].toolTip(), name
    assert acts["font_larger"].shortcut() == QtGui.QKeySequence("Ctrl+=")
    assert acts["font_smaller"].shortcut() == QtGui.QKeySequence("Ctrl+-")
    keys = [k.toString() for a in acts.values() for k in a.shortcuts()]
    assert len(keys) == len(set(keys)), sorted(keys)            # no shortcut does two things
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&File", "&View", "&Present", "&Help"]


def test_ctrl_q_closes_cleanly(window, qtbot):
    worker = window.controller._worker
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Q, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert not worker.isRunning()


def test_screenshot_script_renders_steps(qtbot, tmp_path):
    from tools.screenshots import main
    assert main(["--out", str(tmp_path), "--only", "trainable.scores", "33"]) == 0
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["step_11_trainable_scores.png", "step_33_multihead_out_proj.png"]
    assert not QtGui.QImage(str(tmp_path / pngs[0])).isNull()
