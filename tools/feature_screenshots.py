"""Render the cell inspector and the equivalence view to PNG, offscreen.

    python -m tools.feature_screenshots --out resources/screenshots

writes ``inspector.png`` (the window on step 2.4 after a click on ω[journey, starts]: the
arithmetic on the right, the query and key rows framed) and ``equivalence.png`` (the four
difference heatmaps for the book's multi-head section). Uses a private QSettings folder.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def save_small(widget, path: Path) -> None:
    """Grab ``widget`` to PNG, as a 256-colour image when that file is smaller (text stays crisp)."""
    from PySide6 import QtCore, QtGui
    img = widget.grab().toImage()
    img.save(str(path), "PNG")
    small = path.with_suffix(".tmp.png")
    img.convertToFormat(QtGui.QImage.Format.Format_Indexed8,
                        QtCore.Qt.ImageConversionFlag.AvoidDither).save(str(small), "PNG", 9)
    if small.stat().st_size < path.stat().st_size:
        small.replace(path)
    else:
        small.unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.feature_screenshots", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    QtCore.QSettings.setDefaultFormat(QtCore.QSettings.Format.IniFormat)
    settings = QtCore.QSettings(str(Path(tempfile.mkdtemp(prefix="stepper-shots-")) / "s.ini"),
                                QtCore.QSettings.Format.IniFormat)
    from gui.app import make_window, start
    controller, win = make_window(settings)
    win.resize(1400, 860)
    win.show()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def wait(cond, ms: int = 120_000) -> None:
        timer = QtCore.QElapsedTimer()
        timer.start()
        while not cond() and timer.elapsed() < ms:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)

    def settle(ms: int = 300) -> None:
        wait(lambda: False, ms)

    start(win, controller)
    wait(lambda: controller.has_trace and not controller.is_busy())
    index = {s.id: i for i, s in enumerate(controller.steps)}
    controller.go(index["trainable.scores"])
    settle()
    model = controller.model
    k = next(k for k, d in enumerate(model.shown) if d.key == ("trainable", "attn_scores"))
    model.click(k, 0, 1, 2)
    settle()
    save_small(win, out / "inspector.png")

    controller.go(index["multihead.out_proj"])
    view = win.equivalences
    view.setParent(None)                       # render the view on its own, at a readable size
    view.resize(1100, 640)
    view.show()
    settle(600)
    save_small(view, out / "equivalence.png")
    view.close()
    win.close()
    controller.shutdown()
    print(f"wrote {out / 'inspector.png'} and {out / 'equivalence.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
