"""The Train window of the main window: View → Train attention… and "Open in stepper".

The :class:`gui.train_view.TrainView` is made on first use as its own top-level window (a child
of the main window with the Window flag, so it closes with it), kept while the app runs with its
run, and raised when asked for again. "Open in stepper" puts one layer of the shown snapshot
into the stepper's custom mode (core.train.stepper): the probe's layer input as edited inputs,
the layer's W_query, W_key, W_value, W_out, b_out as stage 4's weights, then shows
multihead.weights. ``shutdown`` cancels a running training and waits for its thread.
"""
from __future__ import annotations

from PySide6 import QtCore

STEPPER_STEP = "multihead.weights"     # where a snapshot opens: every head's attn_weights


def train_view(window, create: bool = True):
    """The window's TrainView (made on first use when ``create``), or None."""
    view = getattr(window, "train_view", None)
    if view is None and create:
        from gui.train_view import TrainView
        view = TrainView(parent=window)
        view.setWindowFlag(QtCore.Qt.WindowType.Window, True)
        view.setWindowTitle("Train attention — Attention Stepper")
        view.resize(1366, 768)
        view.open_in_stepper.connect(lambda run, index, layer: open_in_stepper(window, run, index, layer))
        window.train_view = view
    return view


def show_train(window) -> None:
    """Show the Train window (kept with its run between showings), raised above the main window."""
    view = train_view(window)
    view.show()
    view.raise_()
    view.activateWindow()


def open_in_stepper(window, run, index: int, layer: int) -> str:
    """Step through layer ``layer`` of snapshot ``index`` as stage 4; returns the status message."""
    from core.train.stepper import stepper_source
    src = stepper_source(run, index, layer)
    controller = window.controller
    step = next((i for i, s in enumerate(controller.steps) if s.id == STEPPER_STEP), controller.index)
    controller.go(step)
    controller.restore("custom", src.config.to_dict(), src.inputs, {}, multihead=src.multihead, multihead_source=src)
    message = (f"Stage 4 now uses the trained {src}: its W_query, W_key, W_value "
               "and W_out on the probe sequence (stages 1–3 keep drawn weights)")
    window.statusBar().showMessage(message, 15000)
    window.raise_()
    window.activateWindow()
    return message


def shutdown(window) -> None:
    """Cancel a running training and wait for its thread (the main window is closing)."""
    view = train_view(window, create=False)
    if view is not None:
        view.shutdown()
        view.close()
