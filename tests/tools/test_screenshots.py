"""tools/screenshots.py renders the chosen steps to PNG."""
from __future__ import annotations

from PySide6 import QtGui


def test_screenshot_script_renders_steps(qtbot, tmp_path):
    from tools.screenshots import main
    assert main(["--out", str(tmp_path), "--only", "trainable.scores", "33"]) == 0
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["step_11_trainable_scores.png", "step_33_multihead_out_proj.png"]
    assert not QtGui.QImage(str(tmp_path / pngs[0])).isNull()


def test_window_shots_grabs_the_first_window_with_fresh_settings(tmp_path):
    """tools/window_shots.py (the learner's look): a subprocess with its own settings folder grabs
    the screen for each step asked, a clicked one too; the user's settings are not touched."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "tools.window_shots", "--out", str(tmp_path / "out"),
                           "1.6", "click:2.4"], cwd=root, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["1_6.png", "2_4_click.png"]
    image = QtGui.QImage(str(tmp_path / "out" / "1_6.png"))
    assert not image.isNull() and image.width() > 100
    assert not (tmp_path / "home").exists()           # settings went to the tool's own folder


def test_window_shots_sets_the_bars_of_stages_6_to_8(tmp_path):
    """--bar decode.variant=mla: the decode step is grabbed with the bar's MLA; a refused option
    (8 heads over 3 K/V heads) is exit 2 with one line."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "tools.window_shots", "--out", str(tmp_path / "out"),
                           "--bar", "decode.variant=mla", "decode.latent=4", "--", "6.5"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not QtGui.QImage(str(tmp_path / "out" / "6_5.png")).isNull()
    bad = subprocess.run([sys.executable, "-m", "tools.window_shots", "--out", str(tmp_path / "bad"),
                          "--bar", "decode.kv_groups=3", "--", "6.5"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=240)
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip() and "propagateSizeHints" not in ln]
    assert bad.returncode == 2 and len(lines) == 1 and lines[0].startswith("--bar decode: kv groups:"), bad.stderr
    assert not list((tmp_path / "bad").glob("*.png"))
