"""Export a trace: one CSV per 2-D slice of every intermediate, plus manifest.json.

CSV layout: a header row of column labels (first cell: the row axis), then one row per
row label. float32 values are written with 9 significant digits and float64 with 17, so
reading them back gives the same number; −inf is written as ``-inf``.

Writing is atomic at the folder level on any filesystem (core.safe_folder): files go to a
hidden work folder inside the target and replace the earlier export's set in one journaled
switch-over, so a failed, cancelled or killed export leaves the complete old set (or, once the
switch-over began, the next export completes it). Non-numbers (nan, inf) are written as such
and listed under ``notes`` in the manifest (core.numerics).
"""
from __future__ import annotations

import io
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from core.files import as_umask_allows
from core.numerics import undefined_value_notes
from core.safe_folder import FolderError, replace_export, short
from core import csv_writer
from core.stages.schema import LEAD_KINDS
from core.trace import Intermediate, Trace

MANIFEST_VERSION = 1


class ExportError(Exception):
    """An export that could not be written; the message says what to fix."""


class ExportCancelled(Exception):
    """The export was cancelled; nothing was written."""


def format_value(v: float, digits: int) -> str:
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "-inf" if v < 0 else "inf"
    return format(float(v), f".{digits}g")


def slice_csv(arr: np.ndarray, row_labels, col_labels, corner: str = "") -> str:
    """One 2-D (or 1-D, as a single row) array as CSV text with labels."""
    digits = 17 if arr.dtype == np.float64 else 9
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    buf = io.StringIO()
    buf.write(",".join([csv_writer.cell(corner)] + [csv_writer.cell(c) for c in col_labels]) + "\n")
    # "%.9g" % v writes what format_value(v, 9) writes (nan, inf, -inf, -0 included), ~7× faster
    line = ",".join([f"%.{digits}g"] * arr.shape[1])
    for label, row in zip(row_labels, arr.tolist()):
        buf.write(csv_writer.cell(label) + "," + line % tuple(row) + "\n")
    return buf.getvalue()


def export_lead(item: Intermediate) -> int:
    """How many leading batch/head axes an export enumerates: one file per batch item and head.

    Read off the term's axes (core.stages.schema.LEAD_KINDS), keeping at least one axis per
    slice: (b, h, T, T) weights give T×T files, (h, hd) per-head biases one row per head,
    like the (h, d_in, hd) per-head weights.
    """
    lead = 0
    while lead < len(item.axes) - 1 and item.axes[lead] in LEAD_KINDS:
        lead += 1
    return lead


def slices(item: Intermediate) -> Iterable[tuple[list[int], np.ndarray]]:
    """(leading indices, 2-D or 1-D slice) for every exported slice of an intermediate."""
    arr = item.numpy()
    lead = export_lead(item)
    for index in itertools.product(*(range(n) for n in arr.shape[:lead])):
        yield list(index), arr[index]


def slice_filename(item: Intermediate, index: list[int]) -> str:
    """``stage/name_b0_h1.csv``: the leading indices, each after its axis' initial."""
    parts = [item.name] + [f"{kind[0]}{i}" for kind, i in zip(item.axes, index)]
    return f"{item.stage}/{'_'.join(parts)}.{'csv'}"


def slice_labels(item: Intermediate, lead: int | None = None) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """(row labels, column labels, corner cell) of a slice after ``lead`` leading indices
    (default: the displayed slice, ``item.lead_axes()``)."""
    lead = item.lead_axes() if lead is None else lead
    if len(item.axes) - lead == 1:
        return (item.name,), item.labels[-1], item.axes[-1]
    return item.labels[-2], item.labels[-1], f"{item.axes[-2]}\\{item.axes[-1]}"


def manifest_entry(item: Intermediate, index: list[int], shape, file: str, **extra) -> dict:
    """One manifest row: the slice's ``shape`` beside the intermediate's ``full_shape``."""
    return {"stage": item.stage, "name": item.name, "index": list(index), "shape": list(shape),
            "full_shape": list(item.shape), "axes": list(item.axes), "file": file, **extra}


def count_slices(trace: Trace) -> int:
    total = 0
    for item in trace:
        lead = export_lead(item)
        total += int(np.prod(item.shape[:lead], dtype=np.int64)) if lead else 1
    return total


def export_trace(trace: Trace, out_dir: str | Path, fmt: str = "csv",
                 progress: Callable[[int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None,
                 note: Callable[[str], None] | None = None) -> Path:
    """Write the trace to ``out_dir`` (created if missing). fmt: "csv", "npy" or "npz".

    ``progress(done, total)`` is called after each file; ``cancelled()`` is polled and, when
    true, the export stops with ExportCancelled and leaves ``out_dir`` untouched. The earlier
    export in ``out_dir`` is replaced as a whole (core.safe_folder: staged inside the folder,
    journaled switch-over); ``note(line)`` gets one line per leftover of a dead export swept.
    """
    if fmt not in ("csv", "npy", "npz"):
        raise ExportError(f"format must be csv, npy or npz, got {fmt!r}")
    try:
        return replace_export(out_dir, lambda folder: _write_all(trace, folder, fmt, progress, cancelled),
                              cancelled=cancelled, note=note)
    except FolderError as exc:
        raise ExportError(str(exc)) from None
    except OSError as exc:
        raise ExportError(f"cannot write the export to {short(Path(out_dir))}: {exc.strerror or exc}") from None


NPY_CHUNK_BYTES = 16 * 2**20   # a cancel is seen after at most this much of one array is written


def _check(cancelled) -> None:
    if cancelled and cancelled():
        raise ExportCancelled()


def write_npy(fh, arr: np.ndarray, check: Callable[[], None] | None = None) -> None:
    """``arr`` in .npy format into the binary file ``fh`` (what np.save writes for a C-ordered
    array), its data in chunks of NPY_CHUNK_BYTES with ``check()`` before each."""
    arr = np.asarray(arr)
    arr = arr if arr.flags.c_contiguous else arr.copy(order="C")   # (ascontiguousarray makes 0-d 1-d)
    header = np.lib.format.header_data_from_array_1_0(arr)
    try:
        np.lib.format.write_array_header_1_0(fh, header)
    except ValueError:   # a header over 64 KiB (never for an export's arrays): version 2.0
        np.lib.format.write_array_header_2_0(fh, header)
    data = memoryview(arr.reshape(-1)).cast("B") if arr.size else memoryview(b"")
    for start in range(0, len(data), NPY_CHUNK_BYTES):
        if check is not None:
            check()
        fh.write(data[start:start + NPY_CHUNK_BYTES])


def _write_all(trace, staging: Path, fmt, progress, cancelled) -> list[str]:
    tensors = []
    written: list[str] = []
    total = count_slices(trace) if fmt != "npz" else len(list(trace))
    done = 0
    check = (lambda: _check(cancelled)) if cancelled else None
    for stage in trace.stages:
        (staging / stage).mkdir(exist_ok=True)
    if fmt == "npz":
        # what np.savez writes (stored, not compressed), one array at a time: cancel is polled
        # between arrays and between chunks of each
        import zipfile
        with zipfile.ZipFile(staging / "trace.npz", "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for item in trace:
                _check(cancelled)
                key = f"{item.stage}/{item.name}"
                with zf.open(key + ".npy", "w", force_zip64=True) as fh:
                    write_npy(fh, item.numpy(), check)
                tensors.append(manifest_entry(item, [], item.shape, "trace.npz", key=key))
                done += 1
                if progress:
                    progress(done, total)
        written.append("trace.npz")
    elif fmt == "npy":
        for item in trace:
            _check(cancelled)
            rel = f"{item.stage}/{item.name}.npy"
            with open(staging / rel, "wb") as fh:
                write_npy(fh, item.numpy(), check)
            written.append(rel)
            tensors.append(manifest_entry(item, [], item.shape, rel))
            lead = export_lead(item)
            done += int(np.prod(item.shape[:lead], dtype=np.int64)) if lead else 1
            if progress:
                progress(done, total)
    else:
        # polled before the first file and after each: the files are formatted a few chunks ahead
        # of the one being written, but "cancelled" stops before the next file is begun
        _check(cancelled)
        for path in csv_writer.write_files(_csv_files(trace, staging, tensors), check):
            written.append(path.relative_to(staging).as_posix())
            done += 1
            if progress:
                progress(done, total)
            if cancelled and cancelled():
                raise ExportCancelled()
    manifest = {
        "version": MANIFEST_VERSION,
        "config": trace.config.to_dict(),
        "device": trace.device,
        "tokens": list(trace.tokens),
        "format": fmt,
        "tensors": tensors,
        # where a value is not a number (e.g. 0/0 for a padding token) and why; [] when none
        "notes": undefined_value_notes(trace),
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    written.append("manifest.json")
    return written


def _csv_files(trace, staging: Path, tensors: list) -> Iterator[csv_writer.SliceFile]:
    """The CSV files of a trace, in order, computed as the writer reaches them; a slice with
    the same values (bit for bit) and labels as an earlier one (the W_query every stage shows,
    ``dropped_weights`` without dropout…) is copied from that file instead of formatted again."""
    earlier: dict[tuple, list[tuple[np.ndarray, Path]]] = {}
    for item in trace:
        rows, cols, corner = slice_labels(item, export_lead(item))
        for index, arr in slices(item):
            rel = slice_filename(item, index)
            tensors.append(manifest_entry(item, index, arr.shape, rel))
            path = staging / rel
            key = (arr.shape, arr.dtype.str, tuple(rows), tuple(cols), corner, _fingerprint(arr))
            same = next((p for a, p in earlier.get(key, ()) if _same_bits(a, arr)), None)
            if same is None:
                earlier.setdefault(key, []).append((arr, path))
            yield csv_writer.SliceFile(path, arr, rows, cols, corner, same_as=same)


def _fingerprint(arr: np.ndarray) -> bytes:
    """About 500 of the array's values, spread over it (never a copy of it): equal arrays have
    equal ones."""
    step = max(1, round((arr.size / 509) ** (1 / max(arr.ndim, 1))))
    return np.ascontiguousarray(arr[(slice(None, None, step),) * arr.ndim]).tobytes()


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit equal (0.0 and -0.0 differ, a nan equals the same nan): the same CSV text."""
    return a.shape == b.shape and a.dtype == b.dtype and \
        np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def write_matrix_csv(item: Intermediate, index: list[int], path: str | Path) -> Path:
    """One slice of one intermediate as CSV, written atomically (temp file, then rename)."""
    arr = item.numpy()[tuple(index)] if index else item.numpy()
    rows, cols, corner = slice_labels(item)
    return write_text_atomic(path, slice_csv(arr, rows, cols, corner))


def write_text_atomic(path: str | Path, text: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise ExportError(f"{p} is a folder; choose a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    except OSError as exc:
        raise ExportError(f"cannot write into {p.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            as_umask_allows(fh.fileno())       # mkstemp's 0600 → what the umask gives new files
            fh.write(text)
        os.replace(tmp, p)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ExportError(f"cannot write {p}: {exc.strerror or exc}") from None
    return p


def read_csv_slice(path: str | Path, dtype=np.float32) -> tuple[list[str], list[str], np.ndarray]:
    """Read back a CSV written by ``slice_csv``: (row labels, column labels, values)."""
    import csv
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    cols = rows[0][1:]
    labels = [r[0] for r in rows[1:]]
    values = np.array([[float(c) for c in r[1:]] for r in rows[1:]], dtype=dtype)
    return labels, cols, values
