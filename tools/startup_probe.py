"""Start-up timing for ``python main.py bench``: report when the window and the first heatmap appear.

Enabled by the environment variable ``ATTENTION_STEPPER_STARTUP_PROBE`` (gui.app calls
:func:`install` right after ``window.show()``). It prints one line
``STARTUP_PROBE {"window_shown": t1, "first_heatmap": t2, ...}`` with wall-clock times
(``time.time()``), so the parent process that launched the app can subtract its own launch
time, then quits the app. Nothing here runs in normal use.
"""
from __future__ import annotations

import json
import sys
import time

ENV = "ATTENTION_STEPPER_STARTUP_PROBE"
PREFIX = "STARTUP_PROBE "


def install(app, window, controller) -> None:
    from PySide6 import QtCore

    times: dict[str, float] = {}

    def shown() -> None:
        window.repaint()                         # the first frame is on screen now
        times["window_shown"] = time.time()
        times["torch_loaded_at_show"] = float("torch" in sys.modules)

    def heatmap_drawn() -> None:
        view = window.step_view
        if view is None or not view.panels or window.stack.currentWidget() is not view:
            QtCore.QTimer.singleShot(10, heatmap_drawn)
            return
        window.repaint()                         # the heatmaps' images are rendered in paint
        times["first_heatmap"] = time.time()
        times.pop("pending", None)
        print(PREFIX + json.dumps(times), flush=True)
        window.close()
        app.quit()

    def on_trace() -> None:
        if "first_heatmap" not in times and "pending" not in times:
            times["pending"] = 1.0
            QtCore.QTimer.singleShot(0, heatmap_drawn)   # after the views' own slots

    QtCore.QTimer.singleShot(0, shown)
    controller.model.trace_changed.connect(on_trace)   # the first (partial) trace drawn
