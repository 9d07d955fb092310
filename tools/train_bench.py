"""Benchmark of the Train view: how long the UI thread is blocked while a run trains and draws.

``train_ui_block_ms()`` opens the view offscreen, trains the default induction run in it and
beats a 2 ms QTimer on the UI thread; it returns the longest and the median gap between beats
(the target: ≤ 50 ms), when the longest gap happened (seconds after Start), the UI thread's own
CPU time within that gap (much less than the gap: the thread waited for a core or the GIL, e.g.
on a machine busy with other work, rather than computing), the snapshots drawn and the run's
wall time.

The view runs as in the app (View → Train attention…): automatic garbage collection off and
driven from the UI thread (gui.gc_guard, which the app's controller installs) and the objects
loaded before the first run frozen (gui.app.freeze_gc_after_first_trace). Without them a full
collection of torch's and Qt's ~200,000 objects takes 100–300 ms on a busy 2-core machine and
runs on whichever thread allocates, the training thread included, holding the GIL throughout.
"""
from __future__ import annotations

import os
import statistics
import time

# After show, pyqtgraph lays its plots out again once their axes have measured their tick labels
# (in the first paint); a single processEvents left that to the first frames of the run.
SETTLE_MS = 300


def train_ui_block_ms(settings=None, size=(1366, 768)) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    from core.train.settings import defaults_for
    from gui.train_view import TrainView
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    import gc

    from gui.gc_guard import MainThreadGC
    guard = MainThreadGC()
    view = TrainView(settings or defaults_for("induction", device="cpu"))
    view.resize(*size)
    view.show()
    settle = QtCore.QEventLoop()     # as a learner's window: shown and laid out before Start is pressed
    QtCore.QTimer.singleShot(SETTLE_MS, settle.quit)
    settle.exec()
    gc.freeze()          # what the app does after its first trace
    gaps: list[float] = []
    longest_at = [0.0, 0.0]          # seconds after Start, UI-thread CPU seconds in the gap
    last = [time.perf_counter(), time.thread_time()]

    def beat():
        now, cpu = time.perf_counter(), time.thread_time()
        gaps.append(now - last[0])
        if gaps[-1] >= max(gaps):
            longest_at[:] = [now - start, cpu - last[1]]
        last[:] = [now, cpu]

    heart = QtCore.QTimer(interval=2)
    heart.timeout.connect(beat)
    loop = QtCore.QEventLoop()
    poll = QtCore.QTimer(interval=100)
    poll.timeout.connect(lambda: None if view.training else loop.quit())
    view.start()
    start = time.perf_counter()
    last[:] = [time.perf_counter(), time.thread_time()]
    heart.start()
    poll.start()
    loop.exec()
    heart.stop()
    poll.stop()
    wall = time.perf_counter() - start
    snapshots = len(view.snapshots)
    view.close()
    guard.stop()
    return {"ui_block_max_ms": 1000 * max(gaps), "ui_block_median_ms": 1000 * statistics.median(gaps),
            "ui_block_max_at_s": longest_at[0], "ui_block_max_cpu_ms": 1000 * longest_at[1], "snapshots_drawn": snapshots, "train_wall_s": wall}


if __name__ == "__main__":
    import json
    print(json.dumps(train_ui_block_ms(), indent=1))
