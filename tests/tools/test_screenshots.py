"""tools/screenshots.py renders the chosen steps to PNG."""
from __future__ import annotations

from PySide6 import QtGui


def test_screenshot_script_renders_steps(qtbot, tmp_path):
    from tools.screenshots import main
    assert main(["--out", str(tmp_path), "--only", "trainable.scores", "33"]) == 0
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["step_11_trainable_scores.png", "step_33_multihead_out_proj.png"]
    assert not QtGui.QImage(str(tmp_path / pngs[0])).isNull()
