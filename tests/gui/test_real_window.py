"""Under a real X server (Xvfb): `python main.py` opens, steps with Right, quits on Ctrl+Q with 0.

Skipped where Xvfb or xdotool is missing (Debian: xvfb xdotool libxcb-cursor0 libxcb-icccm4
libxcb-keysyms1). The step reached is read back from the settings the app saves on quit.
"""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")),
                                reason="needs Xvfb and xdotool")


def _xdotool(env, *args, timeout=30) -> str:
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=True).stdout.strip()


@pytest.fixture
def xserver(tmp_path):
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as fh:
        display = fh.readline().strip()
    yield f":{display}"
    proc.terminate()
    proc.wait(10)


def test_main_launches_steps_with_right_and_quits_with_ctrl_q(xserver, tmp_path):
    env = dict(os.environ, DISPLAY=xserver, QT_QPA_PLATFORM="xcb", XDG_CONFIG_HOME=str(tmp_path / "config"),
               ATTENTION_STEPPER_TOUR="0")
    app = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wid = _xdotool(env, "search", "--sync", "--onlyvisible", "--name", "^Attention Stepper$").split()[0]
        _xdotool(env, "windowfocus", "--sync", wid)
        # X delivers FocusIn, Right and Ctrl+Q in order, so no waiting is needed in between
        _xdotool(env, "key", "--clearmodifiers", "Right")
        _xdotool(env, "key", "--clearmodifiers", "ctrl+q")
        rc = app.wait(30)
    finally:
        if app.poll() is None:
            app.kill()
    out, err = app.communicate()
    assert rc == 0, err[-2000:]
    conf = next((tmp_path / "config").rglob("*.conf"))
    ini = configparser.ConfigParser()
    ini.read(conf)
    assert ini["config"]["step"] == "1", conf.read_text()
