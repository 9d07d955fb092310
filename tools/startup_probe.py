"""Start-up timing for ``python main.py bench``: report when the window and the first heatmap appear.

Enabled by the environment variable ``ATTENTION_STEPPER_STARTUP_PROBE`` (gui.app calls
:func:`install` right after ``window.show()``). It prints one line
``STARTUP_PROBE {"window_shown": t1, "first_heatmap": t2, "trace_heatmap": t3, ...}`` with
wall-clock times (``time.time()``), so the parent process that launched the app can subtract
its own launch time, then quits the app. ``first_heatmap`` is the first matrix on screen: the
inputs step drawn before torch loads (gui.first_step), else the step view's heatmaps;
``trace_heatmap`` is the step view's heatmaps from the first trace. ``torch_loaded_at_*`` say
whether torch was imported by then. Nothing here runs in normal use.
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
        preview_drawn()

    def preview_drawn() -> None:
        preview = getattr(window, "inputs_preview", None)
        if "first_heatmap" in times:
            return
        if preview is not None and preview.painted_at is not None:
            times["first_heatmap"] = preview.painted_at
            times["torch_loaded_at_first_heatmap"] = float(preview.torch_loaded_at_paint)
            times["first_heatmap_is_preview"] = 1.0
        elif "trace_heatmap" not in times:
            QtCore.QTimer.singleShot(5, preview_drawn)

    def heatmap_drawn() -> None:
        view = window.step_view
        if view is None or not view.panels or window.stack.currentWidget() is not view:
            QtCore.QTimer.singleShot(10, heatmap_drawn)
            return
        window.repaint()                         # the heatmaps' images are rendered in paint
        times["trace_heatmap"] = time.time()
        if "first_heatmap" not in times:
            times["first_heatmap"] = times["trace_heatmap"]
            times["torch_loaded_at_first_heatmap"] = 1.0
        times.pop("pending", None)
        print(PREFIX + json.dumps(times), flush=True)
        window.close()
        app.quit()

    def on_trace() -> None:
        if "trace_heatmap" not in times and "pending" not in times:
            times["pending"] = 1.0
            QtCore.QTimer.singleShot(0, heatmap_drawn)   # after the views' own slots

    QtCore.QTimer.singleShot(0, shown)
    controller.model.trace_changed.connect(on_trace)   # the first (partial) trace drawn
