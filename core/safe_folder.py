"""Replace one export's set of files inside a folder, atomically, on any filesystem.

Everything happens INSIDE the target folder ``DIR`` (never beside it: its parent may be
unwritable, ``DIR`` may be the root of a mounted disk or a symlink to another filesystem), so
every rename stays on one filesystem. An export writes into its own hidden work folder
``DIR/.attention-stepper-export-<id>/new/``; the switch-over then moves the previous export's
files (those its manifest.json lists, plus manifest.json) into ``<work>/old/`` and the new ones
into place, following ``<work>/journal.json``; finally the work folder (old files included) is
deleted. Work folders are flock-ed by their owner while it lives; the next export sweeps the
others (dead exports) and says so in one line.

Invariant, whatever kills the process and when:
- a work folder without journal.json: ``DIR`` holds one complete set (the old one before the
  journal is written, the new one once the switch removed it); the work folder is debris.
- a work folder with journal.json: a switch is under way: forward (retire the old set into
  old/, install new/) or, if the file ``undo`` is there too, back. Each step is one rename whose
  done-ness is read from the folders themselves, so the next export finishes it idempotently.
- manifest.json is retired first and installed last (the reverse when undoing), so a manifest.json
  in ``DIR`` always lists exactly the export files beside it; mid-switch there is none.
Ctrl-C/SIGTERM during the switch (main thread) are held until it is undone, then delivered.

Only files this app wrote are ever moved or deleted. Every manifest.json it writes carries
``"written_by": {"name": "attention-stepper-export", "version": 2, "id": ..., "files": [...]}``
(stamped here, whatever wrote the manifest): the export's id, which its journal holds too, and
exactly the files it installed. The next export retires those files and nothing else. A target
whose manifest.json is not stamped so (a user's own manifest, a symlink, not JSON) or lists a
path outside the folder (``../x``, absolute, through a symlinked folder) is refused
(``NotOurs``) before anything is written; so is an export that would write over a file of the
folder that the old manifest does not list. A manifest of the version before the stamp
("version": 1, no "written_by") counts as this app's when its layout and every file name are
what that version wrote (``_legacy_files``); its journal, after a kill, is undone, never
completed, as its list of files to retire came from trusting any manifest.json. A journal whose
id matches neither manifest is left alone.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Callable

try:
    import fcntl
except ImportError:  # Windows: no flock; work folders of live exports are then told apart by age
    fcntl = None

WORK_PREFIX = ".attention-stepper-export-"
MANIFEST = "manifest.json"
EXPORT_SUFFIXES = (".csv", ".npy", ".npz")   # the only files an export writes besides manifest.json
JOURNAL = "journal.json"
# manifest.json's "written_by": what tells this app's exports from any other manifest.json
OWNER_KEY = "written_by"
FORMAT_NAME = "attention-stepper-export"
FORMAT_VERSION = 2          # 1: the manifests before the stamp (recognised by their layout)
MAX_MANIFEST_BYTES = 256 * 2**20
LEFT_ALONE = "its journal does not match the export's files"
UNDO = "undo"               # present: the switch described by the journal is being undone
LOCK_WAIT_S = 60.0          # another export's switch-over takes milliseconds; this is a hung one
NO_FLOCK_STALE_S = 24 * 3600  # without flock, a work folder older than this counts as dead


class FolderError(Exception):
    """The folder could not be written or switched over; the message says what to fix."""


class Stopped(BaseException):
    """Raised inside the switch when Ctrl-C/SIGTERM arrived: undo, then deliver the signal."""


# ----------------------------------------------------------------------------- locks

def _open_dir(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None


def _try_lock(fd: int | None) -> bool | None:
    """True: locked by us now; False: held by a live process; None: cannot lock here (e.g. NFS)."""
    if fd is None or fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None


@contextmanager
def _folder_lock(folder: Path, cancelled: Callable[[], bool] | None):
    """Exclusive use of ``folder`` for a sweep or a switch-over (released when the process dies)."""
    fd = _open_dir(folder)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while _try_lock(fd) is False:
            if cancelled and cancelled():
                from core.export import ExportCancelled
                raise ExportCancelled()
            if time.monotonic() > deadline:
                raise FolderError(f"another export into {short(folder)} has held it for over "
                                  f"{LOCK_WAIT_S:.0f} s; try again when it has finished")
            time.sleep(0.02)
        yield
    finally:
        if fd is not None:
            os.close(fd)


# ----------------------------------------------------------------------------- signals

@contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM (main thread only) and deliver them on exit; yields the pending list."""
    pending: list[int] = []
    saved = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                saved[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
            except (ValueError, OSError):
                pass
    try:
        yield pending
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])  # the caller's own handler runs now, the folder settled


def _check(pending: list[int]) -> None:
    if pending:
        raise Stopped()


# ----------------------------------------------------------------------------- paths

def short(path: Path, limit: int = 100) -> str:
    """A path shortened for a one-line message (its end, where the name is); bytes that are not
    UTF-8 as \\udcXX and line breaks as \\n, so that the message stays one printable line."""
    text = str(path).encode("utf-8", "backslashreplace").decode("utf-8")
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def missing_ancestors(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    try:
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
    except OSError:
        pass
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that are still empty; never anything with files in it."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            continue  # not empty (or gone): leave it


def _safe_rel(name: object) -> str | None:
    """A manifest's file entry as a relative path inside the folder, or None if it is not one."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return None
    p = PurePosixPath(name)
    if p.is_absolute() or p.as_posix() != name or any(part in ("", ".", "..") for part in p.parts) \
            or p.parts[0].startswith(WORK_PREFIX):
        return None   # (as_posix() != name: "a//b", "a/", "./a" — not how an export names a file)
    return p.as_posix()


class NotOurs(FolderError):
    """The folder holds a manifest.json (or a file where the export writes) that this app did not
    write, or a manifest listing a path outside the folder: nothing may be moved or deleted."""


def stamp(export_id: str, files: list[str]) -> dict:
    """What marks a manifest.json as written by this app: the format's name and version, the
    export's id (its journal holds the same) and the files it consists of (manifest.json aside)."""
    return {"name": FORMAT_NAME, "version": FORMAT_VERSION, "id": export_id,
            "files": [f for f in files if f != MANIFEST]}


def _stamp_manifest(staging: Path, export_id: str, files: list[str]) -> None:
    """Add ``"written_by": stamp(...)`` to the manifest.json that ``write`` left in ``staging``.

    Inserted before its closing brace (the writer's layout kept, no re-encoding of a manifest of
    100,000 entries)."""
    path = staging / MANIFEST
    text = path.read_text(encoding="utf-8").rstrip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError("an export's manifest.json must hold one JSON object")
    body = text[:-1].rstrip()
    sep = "" if body == "{" else ","
    path.write_text(f'{body}{sep}\n "{OWNER_KEY}": {json.dumps(stamp(export_id, files))}\n}}\n', encoding="utf-8")


# What the version before the stamp wrote (manifest "version": 1, no "written_by"): recognised by
# its layout, and each file it lists must be a name that version gave its files.
_LEGACY_TRAIN_FILE = re.compile(r"(attn_weights/step_\d{6}/)?attn_weights_l\d+_h\d+\.(csv|npy)")
_LEGACY_TRAIN_FILES = ("loss.csv", "snapshots.csv", "run.npz")


def _legacy_files(data: dict) -> list[object] | None:
    """The files a manifest of the previous version lists, or None if it is not one."""
    tensors = data.get("tensors")
    if data.get("version") != 1 or not isinstance(tensors, list) or \
            not all(isinstance(t, dict) and isinstance(t.get("file"), str) for t in tensors):
        return None
    kind = data.get("kind")
    if kind is None and isinstance(data.get("config"), dict) and data.get("format") in ("csv", "npy", "npz"):
        files = [t["file"] for t in tensors]
        for t, rel in zip(tensors, files):   # stage/name.npy, stage/name_b0_h1.csv, trace.npz
            if not (rel == "trace.npz" or isinstance(t.get("stage"), str) and isinstance(t.get("name"), str)
                    and rel.startswith(f"{t['stage']}/{t['name']}") and rel.endswith(EXPORT_SUFFIXES)):
                return None
        return files
    if kind in ("train", "train_snapshot") and isinstance(data.get("settings"), dict):
        extra = data.get("files", []) if kind == "train" else []
        if not isinstance(extra, list):
            return None
        files = [t["file"] for t in tensors] + extra
        if all(isinstance(f, str) and (_LEGACY_TRAIN_FILE.fullmatch(f) or f in _LEGACY_TRAIN_FILES)
               for f in files):
            return files
    return None


def _manifest_id(path: Path) -> str | None:
    """The export id of the manifest.json at ``path`` if this app stamped it, else None."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        with open(path, encoding="utf-8") as fh:
            owner = json.load(fh).get(OWNER_KEY)
        return owner["id"] if owner.get("name") == FORMAT_NAME and isinstance(owner.get("id"), str) else None
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return None


def owned_files(folder: Path) -> tuple[list[str], str | None]:
    """(the files of the export in ``folder``, manifest.json first; its id, None if unstamped).

    No manifest.json: ([], None). Raises NotOurs for a manifest.json this app did not write (not
    stamped, nor the previous version's layout) and for one listing a path outside the folder
    (``../x``, absolute, through a symlinked folder): then nothing of the folder may be moved.
    """
    manifest = folder / MANIFEST
    try:
        st = os.lstat(manifest)
    except FileNotFoundError:
        return [], None
    except OSError as exc:
        raise FolderError(f"cannot read {short(manifest)}: {exc.strerror or exc}") from None
    foreign = NotOurs(f"{short(folder)} holds a manifest.json that this app did not write; nothing was "
                      "changed (move it away, or export into another folder)")
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
        raise foreign
    try:
        with open(manifest, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        raise foreign from None
    owner = data.get(OWNER_KEY) if isinstance(data, dict) else None
    if isinstance(owner, dict) and owner.get("name") == FORMAT_NAME and isinstance(owner.get("version"), int) \
            and isinstance(owner.get("id"), str) and isinstance(owner.get("files"), list):
        entries, export_id = owner["files"], owner["id"]
    elif isinstance(data, dict) and OWNER_KEY not in data and (legacy := _legacy_files(data)) is not None:
        entries, export_id = legacy, None
    else:
        raise foreign
    files, real = [MANIFEST], {}
    for entry in entries:
        rel = _safe_rel(entry)
        if rel is None or not rel.endswith(EXPORT_SUFFIXES) or not _inside(folder, rel, real, missing_ok=True):
            shown = str(entry).encode("utf-8", "backslashreplace").decode("utf-8")[:80]
            raise NotOurs(f"{short(manifest)} lists {shown!r}, which is not a file of an export inside "
                          f"{short(folder)}; nothing was changed (move the manifest away, or export into another folder)")
        if rel not in files:
            files.append(rel)
    return files, export_id


def _inside(folder: Path, rel: str, real: dict[str, str], missing_ok: bool = False) -> bool:
    """True if folder/rel is a file or link whose containing folder lies inside ``folder``
    (``missing_ok``: or nothing, as long as its nearest existing folder lies inside).

    ``real`` caches realpath per folder (a few stage folders for hundreds of files)."""
    path = folder / rel
    try:
        if not os.path.lexists(path):
            if not missing_ok:
                return False
        elif path.is_dir() and not path.is_symlink():
            return False
        parent, root = str(path.parent), str(folder)
        for key in (parent, root):
            if key not in real:
                real[key] = os.path.realpath(key)
    except OSError:
        return False
    real_parent, real_root = real[parent], real[root]
    return real_parent == real_root or real_parent.startswith(real_root.rstrip(os.sep) + os.sep)


# ----------------------------------------------------------------------------- the journal

def _write_journal(work: Path, plan: dict) -> None:
    tmp = work / (JOURNAL + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(plan, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, work / JOURNAL)   # the commit point: from now on the next export finishes this
    _fsync_dir(work)


def _read_journal(work: Path) -> dict | None:
    try:
        with open(work / JOURNAL, encoding="utf-8") as fh:
            plan = json.load(fh)
    except (OSError, ValueError):
        return None
    ok = (isinstance(plan, dict)
          and all(isinstance(plan.get(k), list) and all(_safe_rel(r) for r in plan[k])
                  for k in ("retire", "install", "made"))
          and isinstance(plan.get("id", ""), str))
    return plan if ok else None


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def _forward(folder: Path, work: Path, plan: dict, pending: list[int] | None = None) -> None:
    """Retire the old set into work/old (manifest first), then install work/new (manifest last)."""
    for rel in plan["retire"]:
        if pending is not None:
            _check(pending)
        if os.path.lexists(folder / rel) and not os.path.lexists(work / "old" / rel):
            _move(folder / rel, work / "old" / rel)
    for rel in plan["install"]:
        if pending is not None:
            _check(pending)
        if os.path.lexists(work / "new" / rel):
            _move(work / "new" / rel, folder / rel)
    # folders that only held retired files (e.g. a stage the new export lacks) go too, if empty
    parents = {p for rel in plan["retire"] for p in (folder / rel).parents if p != folder and folder in p.parents}
    remove_empty(sorted(parents, key=lambda p: len(p.parts), reverse=True))


def _back(folder: Path, work: Path, plan: dict) -> None:
    """Undo: the installed files back into work/new (manifest first), the old set back into place."""
    for rel in reversed(plan["install"]):
        if os.path.lexists(folder / rel) and not os.path.lexists(work / "new" / rel):
            _move(folder / rel, work / "new" / rel)
    for rel in reversed(plan["retire"]):
        if os.path.lexists(work / "old" / rel) and not os.path.lexists(folder / rel):
            _move(work / "old" / rel, folder / rel)
    remove_empty([folder / rel for rel in plan["made"]])


def _finish(folder: Path, work: Path) -> str:
    """Complete whatever a dead export left in ``work`` and delete it; what was done, in words.

    A journal is followed only if the new manifest.json it installs (still in ``work/new``, or
    already in ``folder``) carries the journal's export id. A journal of the version before the
    stamp (no id: its list of files to retire trusted any manifest.json) is undone, never
    completed: that puts back every file it moved. Any other journal is left alone."""
    plan = _read_journal(work)
    if plan is None:
        what = "removed its unfinished files"
    elif "id" not in plan:
        _back(folder, work, plan)
        what = "undid its switch-over"
    elif plan["id"] not in (_manifest_id(work / "new" / MANIFEST), _manifest_id(folder / MANIFEST)):
        return LEFT_ALONE
    elif not os.path.lexists(work / UNDO):
        _forward(folder, work, plan)
        what = "completed its switch-over"
    else:
        _back(folder, work, plan)
        what = "undid its switch-over"
    _discard(work)
    return what


def _discard(work: Path) -> None:
    """Delete a work folder whose switch (if any) is settled: journal first, so that a kill
    during the deletion leaves plain debris, never a journal over half-deleted files."""
    try:
        os.unlink(work / JOURNAL)
    except FileNotFoundError:
        pass
    _fsync_dir(work)
    shutil.rmtree(work)


# ----------------------------------------------------------------------------- sweeping

def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def sweep(folder: Path) -> list[str]:
    """Finish and delete the work folders of dead exports in ``folder``; one line per kind of action.

    Call with the folder lock held. Work folders of live exports (flock held) are left alone.
    """
    done: dict[str, list[int]] = {}
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(WORK_PREFIX)]
    except OSError:
        return []
    for entry in entries:
        work = Path(entry.path)
        if entry.is_symlink() or not entry.is_dir():
            continue  # not ours (we only ever create real folders)
        fd = _open_dir(work)
        try:
            alive = _try_lock(fd)
            if alive is False:
                continue
            if alive is None and time.time() - entry.stat().st_mtime < NO_FLOCK_STALE_S:
                continue  # cannot tell a live export from a dead one here: leave recent ones
            size = _size(work)
            try:
                what = _finish(folder, work)
            except OSError as exc:
                what = f"could not clean up ({exc.strerror or exc}; it stays)"
            done.setdefault(what, []).extend([1, size])
        finally:
            if fd is not None:
                os.close(fd)
    lines = []
    for what, counts in done.items():
        n, size = len(counts) // 2, sum(counts[1::2])
        if what == LEFT_ALONE:
            lines.append(f"left {n} work folder{'s' if n > 1 else ''} of an interrupted export in {short(folder)} "
                         f"alone: {what}; delete {WORK_PREFIX}* there if no export is running")
            continue
        lines.append(f"swept {n} leftover{'s' if n > 1 else ''} of an interrupted export in {short(folder)} "
                     f"({what}, {size / 1e6:.1f} MB)")
    return lines


def sweep_legacy(folder: Path) -> list[str]:
    """Delete ``.NAME.partial-*`` folders that exports before this module left beside the target.

    Only folders holding nothing but export files (stage folders, .csv/.npy/.npz/.json) are
    deleted; ``.NAME.backup-*`` folders may hold a user's earlier files and are only mentioned.
    """
    parent = folder.parent
    lines, n, size = [], 0, 0
    if not folder.name or parent == folder:
        return []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(f".{folder.name}.") or entry.is_symlink() or not entry.is_dir():
            continue
        kind = entry.name[len(folder.name) + 2:].split("-", 1)[0]
        if kind == "backup":
            lines.append(f"{short(Path(entry.path))} was left by an earlier export and may hold "
                         "your earlier files; look at it, then delete it")
        elif kind == "partial" and _only_export_files(Path(entry.path)):
            try:
                size += _size(Path(entry.path))
                shutil.rmtree(entry.path)
                n += 1
            except OSError:
                pass
    if n:
        lines.insert(0, f"swept {n} unfinished export folder{'s' if n > 1 else ''} beside {short(folder)} "
                        f"({size / 1e6:.1f} MB)")
    return lines


def _only_export_files(path: Path) -> bool:
    for dirpath, _dirs, files in os.walk(path):
        if any(not f.endswith((*EXPORT_SUFFIXES, ".json")) for f in files):
            return False
    return True


# ----------------------------------------------------------------------------- writing

def _fsync_dir(path: Path) -> None:
    fd = _open_dir(path)
    if fd is None:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync a folder; the rename is still atomic
    finally:
        os.close(fd)


def _plan(folder: Path, work: Path, files: list[str], export_id: str) -> dict:
    install = [f for f in files if f != MANIFEST] + ([MANIFEST] if MANIFEST in files else [])
    old, old_id = owned_files(folder)
    real: dict[str, str] = {}
    listed = set(old)
    for rel in install:   # a file of the user's where the export writes is never replaced
        if rel not in listed and os.path.lexists(folder / rel):
            raise NotOurs(f"{short(folder / rel)} is not a file of an earlier export of this app; nothing was "
                          "changed (move it away, or export into another folder)")
    retire = [rel for rel in dict.fromkeys(old + install) if _inside(folder, rel, real)]
    if MANIFEST in retire:  # retired first: mid-switch no manifest.json describes a mixed set
        retire.remove(MANIFEST)
        retire.insert(0, MANIFEST)
    made, dev = [], os.stat(work).st_dev
    for rel in install:
        for p in reversed((folder / rel).parents):
            if p == folder or folder not in p.parents:
                continue
            if os.path.lexists(p):
                if os.stat(p).st_dev != dev:
                    raise FolderError(f"{short(p)} is on another disk than {short(folder)}; "
                                      "export into a folder without mounted sub-folders")
            else:
                made.append(p.relative_to(folder).as_posix())
    made = sorted(dict.fromkeys(made), key=lambda r: r.count("/"), reverse=True)
    return {"id": export_id, "old_id": old_id, "retire": retire, "install": install, "made": made}


def replace_export(out: str | Path, write: Callable[[Path], list[str]],
                   cancelled: Callable[[], bool] | None = None,
                   note: Callable[[str], None] | None = None) -> Path:
    """Replace the export in folder ``out`` (created if missing) by what ``write(folder)`` writes.

    ``write`` gets an empty folder, writes the new set into it and returns the relative paths
    written (manifest.json among them). If it raises, or anything fails before the switch-over
    completes, ``out`` is left exactly as it was (folders this call created removed again).
    ``note(line)`` receives one line per sweep of a dead export's leftovers. A KeyboardInterrupt
    (Ctrl-C, or SIGTERM made one) that arrives once the new set is in place carries
    ``completed = out``: the export was written all the same.
    """
    out = Path(out)
    state = {"done": False}
    try:
        return _replace(out, write, cancelled, note or (lambda line: None), state)
    except KeyboardInterrupt as exc:
        if state["done"]:
            exc.completed = out
        raise


def _replace(out: Path, write, cancelled, say, state: dict) -> Path:
    try:
        is_file = out.exists() and not out.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise FolderError(f"cannot use {short(out)}: {exc.strerror or exc}") from None
    if is_file:
        raise FolderError(f"{short(out)} is a file; choose a folder to export into")
    created = missing_ancestors(out)  # folders this export creates; removed again if it fails
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        remove_empty(created)
        raise FolderError(f"cannot create {short(out)}: {exc.strerror or exc}") from None
    work = None
    work_fd = None
    try:
        with _folder_lock(out, cancelled):
            for line in sweep(out) + sweep_legacy(out):
                say(line)
            owned_files(out)   # a manifest.json not of this app: refused before anything is written
            try:
                work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=out))
            except OSError as exc:
                raise FolderError(f"cannot write into {short(out)}: {exc.strerror or exc}") from None
            work_fd = _open_dir(work)
            _try_lock(work_fd)  # ours while we live: a sweep by another export leaves it alone
        (work / "new").mkdir()
        # No fsync of the new files: a kill cannot lose written data (it is in the page cache),
        # and syncing every file (or the whole filesystem) costs 1-7 s per 1,000 files on a busy
        # disk. After a power cut the new set may read empty; the journal itself is synced.
        files = write(work / "new")
        if MANIFEST not in files:
            raise ValueError("an export must write manifest.json")
        export_id = uuid.uuid4().hex
        _stamp_manifest(work / "new", export_id, files)
        with _folder_lock(out, cancelled):
            for line in sweep(out):
                say(line)
            plan = _plan(out, work, files, export_id)
            _switch(out, work, plan, state)
    finally:
        with _signals_held():
            if work_fd is not None:
                os.close(work_fd)
            if work is not None and (state["done"] or not os.path.lexists(work / JOURNAL)):
                try:
                    _discard(work)
                except OSError:
                    pass  # debris: the next export sweeps it
            if not state["done"]:
                remove_empty(created)
    return out


def _switch(out: Path, work: Path, plan: dict, state: dict) -> None:
    """Forward by the journal; undone on any error or a signal before the last rename."""
    stopped = False
    with _signals_held() as pending:
        _write_journal(work, plan)
        try:
            _forward(out, work, plan, pending)
            _check(pending)
        except BaseException as exc:
            _undo(out, work, plan, exc)
            if not isinstance(exc, Stopped):
                raise
            stopped = True
        else:
            os.unlink(work / JOURNAL)  # settled: the rest of the work folder is plain debris now
            state["done"] = True
    if stopped:  # the signal's own handler did not raise (e.g. ignored): still not written
        raise KeyboardInterrupt()


def _undo(out: Path, work: Path, plan: dict, cause: BaseException) -> None:
    try:  # the direction flips by creating a file (atomic, no rename needed)
        os.close(os.open(work / UNDO, os.O_CREAT | os.O_WRONLY, 0o600))
        _fsync_dir(work)
    except OSError:
        pass  # still forward: a kill now gets the switch rolled forward, complete too
    try:
        _back(out, work, plan)
        os.unlink(work / JOURNAL)
    except OSError:
        reason = f"{cause.strerror or cause}" if isinstance(cause, OSError) else type(cause).__name__
        then = ("puts them back" if os.path.lexists(work / UNDO) else
                "completes this export instead")
        raise FolderError(f"the export to {short(out)} failed ({reason}) and some earlier files could not "
                          f"be put back; they are in {work / 'old'} (the next export into this folder "
                          f"{then})") from None
