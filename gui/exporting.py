"""File-menu actions: export the matrix under focus or the whole trace as CSV, save a PNG.

Each function asks for a path with QFileDialog (tests patch it), writes through core.export
(atomic: temporary name, then rename; whole exports through core.safe_folder) and returns a one-line message for the status bar.
Errors come back as messages, never as tracebacks.
"""
from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def export_matrix(parent, model) -> str:
    """The matrix under focus in the view model (the full 2-D slice, all rows) as one CSV."""
    focused = model.focused()
    trace = model.trace
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
            a, b = next(p.diff for p in model.step.panels if p.is_diff)
            arr = trace[a].numpy().astype("float64") - trace[b].numpy().astype("float64")
            arr = arr[m.index] if m.index else arr
            rows, cols, corner = slice_labels(item)
            write_text_atomic(path, slice_csv(arr, rows, cols, corner))
        elif "merged_heads" in data.extra:       # the heads drawn as one (T, d_out) matrix: write it so
            write_text_atomic(path, slice_csv(m.values, data.row_labels, data.col_labels, f"{item.axes[-2]}\\out"))
        else:
            write_matrix_csv(item, list(m.index), path)
    except ExportError as exc:
        return f"Export failed: {exc}"
    except OSError as exc:
        return f"Export failed: {exc.strerror or exc}"
    return f"Exported {data.key[0]}.{data.key[1]} to {path}"


def export_work(request: tuple, task) -> str:
    """Export a whole trace (core.export.export_trace: atomic; cancelled through ``task``):
    ``request`` is (trace, folder, fmt); progress (files done, total) goes to ``task.progress``.
    Returns the status-bar message."""
    from core.export import ExportCancelled, ExportError, count_slices, export_trace
    from core.numerics import undefined_value_notes
    trace, folder, fmt = request
    swept: list[str] = []
    try:
        out = export_trace(trace, folder, fmt=fmt, progress=lambda done, total: task.progress((done, total)),
                           cancelled=task.cancelled, note=swept.append)
        # the export's own files (the folder may hold the user's too)
        n = {"csv": count_slices(trace), "npy": sum(1 for _ in trace), "npz": 1}[fmt]
        msg = f"Exported the whole trace ({n} {fmt.upper()} files and manifest.json) to {out}"
        undefined = sum(note["count"] for note in undefined_value_notes(trace))
        if undefined:
            msg += f"; {undefined} undefined values (nan/inf) kept as such, see notes in manifest.json"
        if swept:
            msg += "; " + "; ".join(swept)
    except ExportCancelled:
        msg = "Export cancelled; the folder was left as it was"
    except ExportError as exc:
        msg = f"Export failed: {exc}"
    except Exception as exc:  # never a traceback for the learner
        msg = f"Export failed: {type(exc).__name__}: {exc}"
    return msg


def export_runner(parent=None):
    """A runner for one export (gui.tasks.TaskRunner on a thread that ends with it): ``done``
    carries the message, ``progress`` (files done, total); ``cancel()`` leaves the folder as it was."""
    from gui.tasks import TaskRunner
    return TaskRunner(export_work, "export", thread_per_task=True, parent=parent)


FORMATS = {"csv": "CSV", "npy": "NumPy .npy", "npz": "one NumPy .npz"}


def start_export_all(parent, model, fmt: str = "csv"):
    """Ask for a folder and start exporting the current step's trace: its runner (see
    ``export_runner``), or a message if nothing starts.

    fmt: "csv" (one file per 2-D slice), "npy" (one file per intermediate) or "npz" (one archive).
    """
    trace = model.trace
    if trace is None:
        return "Nothing to export yet"
    trace = getattr(trace, "full", trace)      # a decode step: the whole decode trace, every position
    what = FORMATS[fmt]
    folder = QtWidgets.QFileDialog.getExistingDirectory(parent, f"Export all as {what} into folder")
    if not folder:
        return ""
    job = export_runner(parent)
    dialog = QtWidgets.QProgressDialog(f"Exporting every intermediate as {what}…", "Cancel", 0, 0, parent)
    dialog.setWindowTitle(f"Export all as {what}")
    dialog.setMinimumDuration(400)          # small traces finish before it would show
    dialog.setAutoClose(False)
    dialog.setAutoReset(False)
    job.progress.connect(lambda p: (dialog.setMaximum(p[1]), dialog.setValue(p[0])))
    dialog.canceled.connect(job.cancel)
    job.done.connect(lambda _msg: (dialog.close(), dialog.deleteLater()))
    job.submit((trace, folder, fmt))
    return job


def save_image(parent, step_view, index: int) -> str:
    """A PNG of the current step (title, formula and heatmaps)."""
    path, _ = QtWidgets.QFileDialog.getSaveFileName(parent, "Save image", f"step_{index + 1:02d}.png",
                                                    "PNG images (*.png)")
    if not path:
        return ""
    if not path.lower().endswith(".png"):
        path += ".png"
    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if not step_view.grab().save(buf, "PNG"):
        return f"Could not save the image to {path}"
    try:
        write_bytes_atomic(path, bytes(buf.data()))
    except OSError as exc:
        return f"Could not save the image to {path}: {exc.strerror or exc}"
    return f"Saved {path}"


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: never a half-written file."""
    import os
    import tempfile
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(21, "is a folder; choose a file name")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
