"""Render stage 5 (the pretrained model) in the whole window to PNG, offscreen.

``python -m tools.stage5_screenshots --out DIR [--size 1366x768 …]``: the head gallery, one
head's weights step (layer 2, head 4, [CLS]/[SEP] hidden) and the token-lines view, per size.
A private QSettings folder is used (the user's settings are neither read nor written).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _wait(app, cond, timeout_s: float = 120.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("the pretrained stage did not finish computing")
        app.processEvents()
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.stage5_screenshots", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--size", nargs="*", default=["1366x768", "1920x1080"])
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    tmp = tempfile.mkdtemp(prefix="stepper-stage5-")
    settings = QtCore.QSettings(str(Path(tmp) / "s.ini"), QtCore.QSettings.Format.IniFormat)
    from gui.app import make_window, start
    controller, win = make_window(settings)
    win.show()
    start(win, controller)
    _wait(app, lambda: controller.has_trace and not controller.is_busy())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    m, pre = win.model, controller.pretrained

    def go(step_id: str) -> None:
        m.go(next(i for i, s in enumerate(m.steps) if s.id == step_id))
        _wait(app, lambda: m.pretrained is not None and not pre.busy)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)

    for size in args.size:
        w, h = (int(v) for v in size.lower().split("x"))
        win.resize(w, h)
        go("pretrained.gallery")
        win.grab().save(str(out / f"stage5_gallery_{size}.png"))
        pre.open_head(2, 4)
        pre.set_options(hide_special=True)
        go("pretrained.weights")
        win.grab().save(str(out / f"stage5_weights_L2H4_{size}.png"))
        go("pretrained.lines")
        win.grab().save(str(out / f"stage5_token_lines_{size}.png"))
        pre.set_options(hide_special=False, layer=0)
        m.set_head(None)
    print("\n".join(str(x) for x in sorted(out.glob("stage5_*.png"))))
    controller.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
