"""Start the desktop app: ``python main.py`` -> :func:`run_app`.

The window is shown before torch is imported (the controller's worker imports ``core`` in
the background) and before pyqtgraph is imported (the heatmap view is created right after
the window is on screen). On the book's first step its numbers, the inputs X, are drawn at
once (gui.first_step: no torch needed) with "Loading torch…" in the status bar; elsewhere a
"Computing…" placeholder shows until the first trace arrives.
"""
from __future__ import annotations

import sys

APP_NAME = "Attention Stepper"
ORGANIZATION = "AttentionStepper"


def make_window(settings=None):
    """Create the controller and main window (the QApplication must exist)."""
    from gui.controller import Controller
    from gui.main_window import MainWindow
    controller = Controller()
    window = MainWindow(controller, settings)
    return controller, window


def start(window, controller, lesson: str | None = None) -> None:
    """Begin computing from a lesson file (else the saved settings) and build the heatmap view.

    The lesson is read off the UI thread; one that cannot be read gives a message and the
    saved settings are shown instead.
    """
    def from_settings() -> None:
        mode, params, step = window.saved_config()
        if controller.index == 0:          # unless the learner already moved (keys work at once)
            controller.go(step)
        show_first_step(window, controller, mode, params)
        controller.restore(mode, params)

    def after_lesson(message: str) -> None:
        if message:                        # not opened (the message is on screen)
            from_settings()

    if lesson:
        from gui.lessons import open_lesson
        open_lesson(window, lesson, on_done=after_lesson)
    else:
        from_settings()
    window.finish_setup()


LOADING = "Loading torch…"


def show_first_step(window, controller, mode: str, params: dict | None) -> None:
    """Draw the inputs step's numbers now, before torch loads (they need no computing).

    Only on the book's inputs step (gui.first_step.preview_inputs says when); the status bar
    says "Loading torch…" until the first trace is in. The preview goes when that trace (or an
    error) arrives, or when the learner moves to another step (its numbers would be the wrong ones).
    """
    if "torch" not in sys.modules and not window.statusBar().currentMessage():   # never over a message
        window.statusBar().showMessage(LOADING)
    from gui.first_step import InputsPreview, preview_inputs
    inputs = preview_inputs(mode, params, controller.index)
    model = controller.model

    def done(*_args) -> None:
        if window.statusBar().currentMessage() == LOADING:
            window.statusBar().clearMessage()
        model.trace_changed.disconnect(done)
        model.step_changed.disconnect(done)
        controller.error.disconnect(done)
        preview = getattr(window, "inputs_preview", None)
        if preview is not None:
            window.inputs_preview = None
            if window.stack.currentWidget() is preview:
                window.stack.setCurrentWidget(window.step_view if model.has_trace else window.placeholder)
            window.stack.removeWidget(preview)
            preview.deleteLater()

    model.trace_changed.connect(done)
    model.step_changed.connect(done)
    controller.error.connect(done)
    if inputs is None or model.has_trace:
        return
    window.inputs_preview = InputsPreview(inputs)
    window.stack.addWidget(window.inputs_preview)
    window.stack.setCurrentWidget(window.inputs_preview)
    from PySide6 import QtWidgets
    QtWidgets.QApplication.processEvents()   # the stack's show/layout events, so that the paint below
    window.inputs_preview.repaint()          # puts it on screen now, before torch's and pyqtgraph's imports


def freeze_gc_after_first_trace(controller) -> None:
    """After the first trace (torch, pyqtgraph and the widgets loaded: ~200,000 objects), move
    every object to the GC's permanent generation: a full collection, which holds the GIL, then
    scans only newer objects (75 ms → a few ms, so the worker thread's GC cannot freeze the UI).
    The slot disconnects itself, so "once" needs no flag (gc.get_freeze_count would count the
    200,000 objects on every trace: ~80 ms)."""
    import gc

    def once() -> None:
        controller.trace_changed.disconnect(once)
        gc.freeze()
    controller.trace_changed.connect(once)


def tour_after_first_trace(window, controller) -> None:
    """The first-run tour, once the maps and docks it points at exist; only on the first start
    (QSettings remembers it) and never where ATTENTION_STEPPER_TOUR=0 (the real-window test)."""
    import os
    if os.environ.get("ATTENTION_STEPPER_TOUR", "1") == "0":
        return

    def once() -> None:
        controller.trace_changed.disconnect(once)
        from PySide6 import QtCore
        QtCore.QTimer.singleShot(0, window.maybe_start_tour)     # after the maps are drawn
    controller.trace_changed.connect(once)


def run_app(argv: list[str]) -> int:
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0], *argv])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationDisplayName(APP_NAME)
    controller, window = make_window()
    from gui.errors import install_excepthook
    install_excepthook(window)
    app.aboutToQuit.connect(controller.shutdown)      # however the app ends, stop the worker
    window.show()
    freeze_gc_after_first_trace(controller)
    tour_after_first_trace(window, controller)
    import os
    if os.environ.get("ATTENTION_STEPPER_STARTUP_PROBE"):   # python main.py bench: time the start-up
        from tools.startup_probe import install
        install(app, window, controller)
    extra = [a for a in argv if not a.startswith("-")]        # python main.py LESSON.json
    QtCore.QTimer.singleShot(0, lambda: start(window, controller, extra[0] if extra else None))
    return int(app.exec())
