"""File-menu actions: export the matrix under focus or the whole trace as CSV, save a PNG.

Each function asks for a path with QFileDialog (tests patch it), writes through core.export
(atomic: temporary name, then rename) and returns a one-line message for the status bar.
Errors come back as messages, never as tracebacks.
"""
from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def export_matrix(parent, controller, step_view) -> str:
    """The focused matrix (the full 2-D slice, all rows) as one CSV."""
    focused = step_view.focused()
    trace = controller.trace
    if focused is None or trace is None:
        return "Nothing to export yet"
    data, k = focused
    m = data.maps[k]
    suggested = _safe(f"{data.key[0]}_{data.key[1]}" + "".join(f"_{i}" for i in m.index)) + ".csv"
    path, _ = QtWidgets.QFileDialog.getSaveFileName(parent, "Export matrix as CSV", suggested, "CSV files (*.csv)")
    if not path:
        return ""
    from core.export import ExportError, slice_csv, slice_labels, write_matrix_csv, write_text_atomic
    try:
        item = trace[data.key]
        if data.extra.get("max_abs_diff") is not None:
            a, b = next(p.diff for p in controller.step.panels if p.is_diff)
            arr = trace[a].numpy().astype("float64") - trace[b].numpy().astype("float64")
            arr = arr[m.index] if m.index else arr
            rows, cols, corner = slice_labels(item)
            write_text_atomic(path, slice_csv(arr, rows, cols, corner))
        else:
            write_matrix_csv(item, list(m.index), path)
    except ExportError as exc:
        return f"Export failed: {exc}"
    except OSError as exc:
        return f"Export failed: {exc.strerror or exc}"
    return f"Exported {data.key[0]}.{data.key[1]} to {path}"


def export_all(parent, controller) -> str:
    """The whole trace of the current step, same layout and manifest as `main.py export`."""
    trace = controller.trace
    if trace is None:
        return "Nothing to export yet"
    folder = QtWidgets.QFileDialog.getExistingDirectory(parent, "Export all as CSV into folder")
    if not folder:
        return ""
    from core.export import ExportCancelled, ExportError, export_trace
    QtWidgets.QApplication.setOverrideCursor(QtGui.QCursor(QtCore.Qt.CursorShape.WaitCursor))
    try:
        out = export_trace(trace, folder, fmt="csv")
    except (ExportError, ExportCancelled) as exc:
        return f"Export failed: {exc}"
    except OSError as exc:
        return f"Export failed: {exc.strerror or exc}"
    finally:
        QtWidgets.QApplication.restoreOverrideCursor()
    n = sum(1 for _ in Path(out).rglob("*.csv"))
    return f"Exported the whole trace ({n} CSV files and manifest.json) to {out}"


def save_image(parent, step_view, index: int) -> str:
    """A PNG of the current step (title, formula and heatmaps)."""
    path, _ = QtWidgets.QFileDialog.getSaveFileName(parent, "Save image", f"step_{index + 1:02d}.png",
                                                    "PNG images (*.png)")
    if not path:
        return ""
    if not path.lower().endswith(".png"):
        path += ".png"
    if not step_view.grab().save(path, "PNG"):
        return f"Could not save the image to {path}"
    return f"Saved {path}"
