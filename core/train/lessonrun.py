"""A lesson saved with its training run: ``LESSON.json`` + ``LESSON.run.npz`` beside it.

The lesson JSON stays small: it holds a versioned reference (core.lesson.RunRef: the NPZ's
file name, the run-file version, and the snapshot and layer that stage 4 shows), the NPZ holds
the run (core.train.runfile: settings, probe, losses, snapshots). Both are written to temporary
files first and then moved into place, the NPZ before the JSON, with an earlier NPZ of that name
put back if the JSON cannot be moved: a failed save leaves the earlier pair as it was.

Both get the permissions the user's umask gives new files (as the app's other files do).

Opening: ``open_lesson_run`` reads the run a lesson names, or says in one line why it cannot
(missing, damaged, crafted, another version, a link out of the lesson's folder), so that the
lesson itself still opens. It runs on the lesson reader's thread (gui.lessons.LessonOpener).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.lesson import MAX_BYTES, RUN_SUFFIX, Lesson, LessonError, RunRef
from core.files import as_umask_allows
from core.train.runfile import RUN_VERSION, RunFileError, load_run, run_arrays
from core.train.runner import TrainRun


def run_file_name(lesson_path: str | Path) -> str:
    """``lesson.json`` -> ``lesson.run.npz`` (beside it)."""
    p = Path(lesson_path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return stem + RUN_SUFFIX


def save_lesson_with_run(lesson: Lesson, run: TrainRun, path: str | Path, snapshot: int | None = None,
                         layer: int | None = None) -> tuple[Path, Path]:
    """Write the lesson and its run; returns (lesson path, run path). LessonError says why not."""
    p = Path(path)
    if p.is_dir():
        raise LessonError(f"{p} is a folder; choose a file name")
    folder = p.parent if str(p.parent) else Path(".")
    npz = folder / run_file_name(p)
    ref = RunRef(npz.name, RUN_VERSION, snapshot, layer)
    text = replace(lesson, run=ref).to_json()             # (its stages' options too)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise LessonError(f"the lesson would take {size / 2**20:.0f} MiB; a lesson is at most {MAX_BYTES // 2**20} MiB")
    temps: list[str] = []
    backup = None
    try:
        fd, npz_tmp = tempfile.mkstemp(prefix=f".{npz.name}.", suffix=".tmp", dir=folder)
        temps.append(npz_tmp)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **run_arrays(run))
            as_umask_allows(fh.fileno())
        fd, json_tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=folder)
        temps.append(json_tmp)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            as_umask_allows(fh.fileno())
        if npz.exists():
            fd, backup = tempfile.mkstemp(prefix=f".{npz.name}.", suffix=".old", dir=folder)
            os.close(fd)
            os.replace(npz, backup)
        os.replace(npz_tmp, npz)
        try:
            os.replace(json_tmp, p)
        except BaseException:
            npz.unlink(missing_ok=True)
            if backup is not None:
                os.replace(backup, npz)
                backup = None
            raise
    except OSError as exc:
        raise LessonError(f"cannot write {p}: {exc.strerror or exc}") from None
    finally:
        for t in temps:
            Path(t).unlink(missing_ok=True)
        if backup is not None:
            Path(backup).unlink(missing_ok=True)
    return p, npz


def open_lesson_run(lesson: Lesson, lesson_path: str | Path) -> tuple[TrainRun | None, str]:
    """(the run the lesson names, "") or (None, one line saying why it was not opened)."""
    ref = lesson.run
    if ref is None:
        return None, ""
    if ref.version != RUN_VERSION:
        return None, (f"its run {ref.file} is run-file version {ref.version}; this app reads version "
                      f"{RUN_VERSION}: the lesson opened without it")
    folder = Path(lesson_path).parent
    npz = folder / ref.file
    if not npz.is_file():
        return None, f"its run {ref.file} is missing beside the lesson: the lesson opened without it"
    try:      # a symbolic link is followed only to a file within the lesson's folder
        target = npz.resolve(strict=True)
        inside = target.is_relative_to(folder.resolve(strict=True))
    except (OSError, RuntimeError):     # a loop of links, a folder that went away
        inside = False
    if not inside:
        return None, (f"its run {ref.file} is a link to a file outside the lesson's folder, which is not "
                      "read: the lesson opened without it")
    try:
        run = load_run(target, follow_symlinks=False)
    except RunFileError as exc:
        return None, f"its run could not be read ({exc}): the lesson opened without it"
    except Exception as exc:     # a damaged archive numpy trips over otherwise: still one line
        return None, f"its run {ref.file} could not be read ({type(exc).__name__}): the lesson opened without it"
    if ref.snapshot is not None and not (ref.snapshot < len(run.snapshots) and ref.layer < run.settings.num_layers):
        return run, (f"its run {ref.file} has no snapshot {ref.snapshot}, layer {ref.layer}: stage 4 uses drawn "
                     "weights")
    return run, ""
