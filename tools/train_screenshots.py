"""Screenshots of the Train view at the start, middle and end of a task's default run.

    python -m tools.train_screenshots --out screenshots-tmp [--size 1366x768] [--task next_word]

Trains in the view's own thread, as a learner would, then scrubs the timeline to the first,
middle and last snapshot and saves one PNG each (offscreen Qt works).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.train_screenshots")
    p.add_argument("--out", required=True)
    p.add_argument("--size", default="1366x768")
    p.add_argument("--task", default="induction", help="induction (default), previous_token or next_word")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    from gui.train_view import TrainView
    from core.train.settings import defaults_for
    view = TrainView(defaults_for(args.task, device="cpu"))
    view.resize(width, height)
    view.show()
    view.start()
    # wait in an event loop (not a processEvents spin, which would hold the GIL the worker needs)
    loop = QtCore.QEventLoop()
    poll = QtCore.QTimer(interval=100)
    poll.timeout.connect(lambda: None if view.training else loop.quit())
    poll.start()
    loop.exec()
    poll.stop()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    last = len(view.snapshots) - 1
    for name, index in (("start", 0), ("middle", last // 2), ("end", last)):
        view.slider.setValue(index)
        app.processEvents()
        path = out / f"train_{args.task}_{name}.png"
        view.grab().save(str(path))
        print(path)
    view.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
