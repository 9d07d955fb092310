"""Render every step of the stepper to PNG, offscreen: ``python -m tools.screenshots --out DIR``.

Uses a private QSettings folder (the user's settings are neither read nor written) and the
Book preset unless ``--custom KEY=VALUE …`` gives config fields (e.g. ``d_out=4 num_heads=2``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for step_NN_<id>.png")
    p.add_argument("--size", default="1400x860", help="window size WxH (default 1400x860)")
    p.add_argument("--only", nargs="*", default=None, help="step ids (or numbers) to render")
    p.add_argument("--window", action="store_true", help="grab the whole window, not only the step view")
    p.add_argument("--custom", nargs="*", default=None, metavar="FIELD=VALUE", help="a custom config")
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    QtCore.QSettings.setDefaultFormat(QtCore.QSettings.Format.IniFormat)
    tmp = tempfile.mkdtemp(prefix="stepper-shots-")
    settings = QtCore.QSettings(str(Path(tmp) / "s.ini"), QtCore.QSettings.Format.IniFormat)
    from gui.app import make_window, start
    controller, win = make_window(settings)
    w, h = (int(v) for v in args.size.lower().split("x"))
    win.resize(w, h)
    win.show()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def render() -> None:
        try:
            for i, step in enumerate(controller.steps):
                if args.only and step.id not in args.only and str(i + 1) not in args.only:
                    continue
                controller.go(i)
                app.processEvents()
                target = out / f"step_{i + 1:02d}_{step.id.replace('.', '_')}.png"
                (win if args.window else win.step_view).grab().save(str(target), "PNG")
                written.append(target)
        finally:
            win.close()
            loop.quit()

    state = {"custom_sent": False}

    def on_trace() -> None:
        if controller.is_busy():          # the Book preset's first section: wait for the rest
            return
        if args.custom and not state["custom_sent"]:
            state["custom_sent"] = True
            controller.set_params(**{k: _value(v) for k, v in (f.split("=", 1) for f in args.custom)})
            return
        QtCore.QTimer.singleShot(0, render)

    controller.trace_changed.connect(on_trace)
    controller.error.connect(lambda f, m: print(f"error: {f}: {m}", file=sys.stderr))
    # a local event loop, not app.exec()/quit(): quitting the application would end every
    # later event loop of a host process (the tests run this in-process)
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(180_000, loop.quit)       # never hang (e.g. an invalid --custom)
    controller.error.connect(lambda f, m: state["custom_sent"] and QtCore.QTimer.singleShot(0, loop.quit))
    start(win, controller)
    loop.exec()
    if win.isVisible():
        win.close()
    controller.shutdown()
    print(f"wrote {len(written)} PNGs to {out}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
