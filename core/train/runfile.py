"""Save and open a training run as one NPZ file (settings + probe + losses + snapshots).

Saving is atomic (a temporary file beside the target, then a rename), so a failed save leaves
no partial file and an earlier file of that name as it was; the file gets the permissions the
user's umask gives new files (0644 under the usual 022), not mkstemp's 0600. Opening checks the
zip's directory and every array's .npy header against the run's settings (names, shapes, dtypes,
sizes) before it decompresses anything, then reads each array into one of the checked size, so
a crafted file cannot make it allocate more than the run it claims to be (at most
MAX_RUN_BYTES, and at most half the memory free); every problem is a :class:`RunFileError`
whose message is one line. The probe's token names are checked as typed token labels are.
"""
from __future__ import annotations

import errno
import json
import math
import os
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from core.config import MAX_TEXT_CHARS, shown_value
from core.files import as_umask_allows
from core.files import shown_path
from core.tokens import label_problem, not_text
from core.train.runner import WEIGHT_NAMES, Snapshot, TrainRun, snapshot_steps
from core.train.settings import TrainSettings, TrainSettingsError

RUN_FORMAT = "attention-stepper-train-run"
RUN_VERSION = 1
_PER_SNAPSHOT = ("step", "loss", "loss_first", "loss_second", "accuracy")
_MEMBERS = ("meta", "history_loss", "history_first", "history_second", "attn_weights", "scores",
            "layer_inputs", *_PER_SNAPSHOT, *WEIGHT_NAMES)

# What opening a run file may cost, whatever the file says (checked before anything is unpacked).
MAX_RUN_BYTES = 2 * 2**30        # all arrays together, unpacked (also at most half the memory free)
MAX_META_BYTES = 4 * 2**20       # the JSON header: settings, a probe of ≤ 512 names of ≤ 200 characters
MAX_MEMBERS = 64                 # entries in the zip's directory (a run has 17)
MAX_DIRECTORY_BYTES = 64 * 2**10
MAX_NPY_HEADER = 10_000          # numpy's own default limit for an .npy header
MAX_RATIO = 16                   # a deflated array may unpack to 16 × its packed size + RATIO_SLACK
RATIO_SLACK = 2**20              # (np.savez stores runs unpacked; float weights barely compress)
_CHUNK = 4 * 2**20


class RunFileError(Exception):
    """A run file that cannot be written or read; the message says why in one line."""


def run_arrays(run: TrainRun) -> dict[str, np.ndarray]:
    """The run as named arrays (what the NPZ holds)."""
    snaps = run.snapshots
    meta = {"format": RUN_FORMAT, "version": RUN_VERSION, "settings": run.settings.to_dict(),
            "probe_tokens": list(run.probe_tokens), "device": run.device, "elapsed_s": run.elapsed_s,
            "notes": list(run.notes)}
    arrays = {
        "meta": np.array(json.dumps(meta)),
        "step": np.array([s.step for s in snaps], dtype=np.int64),
        "history_loss": np.array(run.history_loss, dtype=np.float64),
        "history_first": np.array(run.history_first, dtype=np.float64),
        "history_second": np.array(run.history_second, dtype=np.float64),
        "attn_weights": np.stack([s.attn_weights for s in snaps]),       # (S, L, h, T, T)
        "scores": np.stack([s.scores for s in snaps]),                   # (S, L, h)
        "layer_inputs": np.stack([s.layer_inputs for s in snaps]),       # (S, L, T, d)
    }
    for name in _PER_SNAPSHOT[1:]:
        arrays[name] = np.array([getattr(s, name) for s in snaps], dtype=np.float64)
    for name in WEIGHT_NAMES:
        arrays[name] = np.stack([s.weights[name] for s in snaps])        # (S, L, ...)
    return arrays


def save_run(run: TrainRun, path: str | Path) -> Path:
    """Write the run to ``path`` (an .npz file) atomically."""
    p = Path(path)
    if p.is_dir():
        raise RunFileError(f"{p} is a folder; choose a file name")
    folder = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise RunFileError(f"cannot write into {folder}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **run_arrays(run))
            as_umask_allows(fh.fileno())
        os.replace(tmp, p)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RunFileError(f"cannot write {p}: {exc.strerror or exc}") from None
        raise
    return p


def load_run(path: str | Path, follow_symlinks: bool = True) -> TrainRun:
    """Open a run saved by ``save_run``; RunFileError if it is not one or is damaged.

    Nothing is decompressed before it is known to fit: the zip's central directory and every
    array's .npy header are read first and checked against the run's settings (shapes, dtypes,
    sizes, a compression ratio no real run reaches); only then are the arrays read, each into an
    array of the checked size. A crafted file is refused in one line without allocating.
    ``follow_symlinks=False``: a symbolic link at ``path`` itself is refused (a lesson's run).
    """
    p = Path(path)
    name = _one_line(shown_path(p.name))
    fh = _open_regular(p, name, follow_symlinks)
    try:
        with fh:
            size = os.fstat(fh.fileno()).st_size
            _zip_directory_checked(fh, size)
            with zipfile.ZipFile(fh) as zf:
                return _read_checked(zf, name, size)
    except RunFileError:
        raise
    except _NotARun as exc:
        raise RunFileError(f"{name} is not a training run of this app: {exc}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise RunFileError(f"cannot read {name}: {_one_line(getattr(exc, 'strerror', None) or exc)}") from None
    except Exception as exc:      # whatever else a damaged archive trips in zipfile or numpy: one line
        raise RunFileError(f"cannot read {name}: {type(exc).__name__}: {_one_line(exc)}") from None


class _NotARun(ValueError):
    """The file is a zip but not a run this app wrote (or one changed since)."""


def _one_line(text) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 200 else text[:197] + "…"


def _open_regular(p: Path, name: str, follow_symlinks: bool):
    """The file opened for reading: a regular file (never waits on a FIFO or reads a device)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        st = os.stat(p, follow_symlinks=follow_symlinks)
        if stat.S_ISLNK(st.st_mode):
            raise RunFileError(f"cannot read {name}: it is a symbolic link")
        if not stat.S_ISREG(st.st_mode):
            raise RunFileError(f"cannot read {name}: it is not a regular file")
        fd = os.open(p, flags)
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            raise RunFileError(f"cannot read {name}: it is a symbolic link") from None
        raise RunFileError(f"cannot read {name}: {_one_line(getattr(exc, 'strerror', None) or exc)}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):          # what was opened, not what the path named before
        os.close(fd)
        raise RunFileError(f"cannot read {name}: it is not a regular file")
    return os.fdopen(fd, "rb")


def _zip_directory_checked(fh, file_size: int) -> None:
    """Refuse a central directory with more entries or bytes than a run has, before zipfile parses it."""
    if not hasattr(zipfile, "_EndRecData"):     # (a private helper; without it the later checks still hold)
        return
    fh.seek(0)
    end = zipfile._EndRecData(fh)
    if end is None:
        raise zipfile.BadZipFile("it is not a zip archive (an .npz file)")
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > MAX_MEMBERS or size > MAX_DIRECTORY_BYTES or size > file_size:
        raise _NotARun(f"its zip directory lists {entries} entries in {size} bytes; a run has {len(_MEMBERS)}")
    fh.seek(0)


def _header(zf: zipfile.ZipFile, name: str):
    """(ZipInfo, shape, dtype, offset of the data) of member ``name``.npy, reading only its header."""
    try:
        info = zf.getinfo(name + ".npy")
    except KeyError:
        raise _NotARun(f"missing {name!r}") from None
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _NotARun(f"{name} is compressed with method {info.compress_type}; runs are stored or deflated")
    if info.flag_bits & 0x1:
        raise _NotARun(f"{name} is encrypted")
    with zf.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=MAX_NPY_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=MAX_NPY_HEADER)
        else:
            raise _NotARun(f"{name} is an .npy file of version {version}")
        offset = fp.tell()
    if fortran and len(shape) > 1:
        raise _NotARun(f"{name} is stored in Fortran order")
    return info, tuple(shape), dtype, offset


def _sized(info: zipfile.ZipInfo, name: str, offset: int, nbytes: int) -> None:
    """The member holds exactly ``nbytes`` of data and decompresses to no more than that."""
    if info.file_size != offset + nbytes:
        raise _NotARun(f"{name} says it unpacks to {info.file_size} bytes; its header means {offset + nbytes}")
    limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
        MAX_RATIO * info.compress_size + RATIO_SLACK
    if info.file_size > limit:
        raise _NotARun(f"{name} unpacks {info.compress_size} bytes to {info.file_size}; no run compresses so well")


def _read_data(zf: zipfile.ZipFile, info: zipfile.ZipInfo, shape: tuple, dtype: np.dtype, offset: int) -> np.ndarray:
    """The member's array, read in chunks into an array of the checked size (never more)."""
    out = np.empty(shape, dtype=dtype)
    buf = out.reshape(-1).view(np.uint8)
    with zf.open(info) as fp:
        fp.read(offset)
        done = 0
        while done < buf.size:
            chunk = fp.read(min(_CHUNK, buf.size - done))
            if not chunk:
                raise EOFError(f"{info.filename} ends early")
            buf[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            done += len(chunk)
    return out


def _meta(zf: zipfile.ZipFile) -> dict:
    info, shape, dtype, offset = _header(zf, "meta")
    if shape != () or dtype.kind != "U" or dtype.itemsize > MAX_META_BYTES:
        raise _NotARun("no run header")
    _sized(info, "meta", offset, dtype.itemsize)
    try:
        meta = json.loads(str(_read_data(zf, info, shape, dtype, offset)[()]))
    except (ValueError, RecursionError):
        raise _NotARun("its run header is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise _NotARun("no run header")
    if meta.get("version") != RUN_VERSION:
        raise _NotARun(f"version {shown_value(meta.get('version'))}, this app reads version {RUN_VERSION}")
    return meta


def _probe(raw, settings: TrainSettings) -> tuple[str, ...]:
    """The probe's token names, checked as typed text is (core.tokens.label_problem)."""
    if not isinstance(raw, list):
        raise _NotARun(f"probe_tokens must be a list of token names, got {type(raw).__name__}")
    if len(raw) != settings.context_length:
        raise _NotARun(f"the probe has {len(raw)} tokens; the settings mean {settings.context_length}")
    for i, tok in enumerate(raw):
        problem = label_problem(tok)
        if problem:
            raise _NotARun(f"probe token {i + 1} {problem}")
    if len(" ".join(raw)) > MAX_TEXT_CHARS:
        raise _NotARun(f"the probe is longer than {MAX_TEXT_CHARS} characters")
    return tuple(raw)


def _text_list(raw, what: str) -> tuple[str, ...]:
    if not isinstance(raw, (list, tuple)) or len(raw) > 20 or not all(
            isinstance(n, str) and len(n) <= 1000 and not not_text(n) for n in raw):
        raise _NotARun(f"{what} must be a few lines of text")
    return tuple(raw)


def expected_layout(settings: TrainSettings, snapshots: int) -> dict[str, tuple[tuple[int, ...], tuple[str, ...]]]:
    """Every array's shape and the dtypes it may have, for a run of ``snapshots`` snapshots."""
    S, L, h, T, d, n = (snapshots, settings.num_layers, settings.num_heads, settings.context_length,
                        settings.d_model, settings.steps)
    floats = ("<f4", "<f8")
    return {"step": ((S,), ("<i8", "<i4")),
            **{name: ((n,), floats) for name in ("history_loss", "history_first", "history_second")},
            "attn_weights": ((S, L, h, T, T), floats), "scores": ((S, L, h), floats),
            "layer_inputs": ((S, L, T, d), floats),
            **{name: ((S,), floats) for name in _PER_SNAPSHOT[1:]},
            **{name: ((S, L, d, d), floats) for name in ("W_query", "W_key", "W_value", "W_out")},
            "b_out": ((S, L, d), floats)}


def _read_checked(zf: zipfile.ZipFile, name: str, file_size: int) -> TrainRun:
    names = zf.namelist()
    if len(set(names)) != len(names):
        raise _NotARun("it names an array twice")
    if sum(i.compress_size for i in zf.infolist()) > file_size:
        raise _NotARun("its arrays overlap or lie past its end")
    meta = _meta(zf)
    try:
        settings = TrainSettings.from_dict(meta["settings"])
    except KeyError:
        raise _NotARun("missing 'settings'") from None
    except (TrainSettingsError, TypeError, ValueError) as exc:
        raise _NotARun(f"settings: {_one_line(exc)}") from None
    tokens = _probe(meta.get("probe_tokens"), settings)
    notes = _text_list(meta.get("notes", []), "notes")
    device = meta.get("device", "cpu")
    elapsed = meta.get("elapsed_s", 0.0)
    if not isinstance(device, str) or len(device) > 40 or not_text(device):
        raise _NotARun("device must be a short name")
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not 0 <= elapsed < 1e9:
        raise _NotARun(f"elapsed_s must be a number of seconds, got {shown_value(elapsed)}")
    headers = {}
    step_shape = _header(zf, "step")[1]
    S = step_shape[0] if len(step_shape) == 1 else -1
    most = len(snapshot_steps(settings))
    if not 1 <= S <= most:
        raise _NotARun("no snapshots" if S == 0 else
                       f"step has shape {step_shape}; the settings mean at most {most} snapshots")
    total = 0
    for key, (shape, dtypes) in expected_layout(settings, S).items():
        info, got, dtype, offset = headers[key] = _header(zf, key)
        if got != shape:
            raise _NotARun(f"{key} has shape {got}, expected {shape}")
        if dtype.str not in dtypes:
            raise _NotARun(f"{key} holds {dtype}, expected {' or '.join(np.dtype(t).name for t in dtypes)}")
        nbytes = math.prod(shape) * dtype.itemsize
        _sized(info, key, offset, nbytes)
        total += nbytes
    if total > max_run_bytes():
        raise RunFileError(f"{name} would take {total / 2**20:.0f} MiB of memory; at most "
                           f"{max_run_bytes() / 2**20:.0f} MiB are free for a run")
    data = {key: _read_data(zf, *headers[key]) for key in headers}
    f32 = {key: np.asarray(data[key], dtype=np.float32)
           for key in ("attn_weights", "scores", "layer_inputs", *WEIGHT_NAMES)}
    snaps = [Snapshot(int(data["step"][i]), float(data["loss"][i]), float(data["loss_first"][i]),
                      float(data["loss_second"][i]), float(data["accuracy"][i]),
                      f32["attn_weights"][i], f32["scores"][i], f32["layer_inputs"][i],
                      {key: f32[key][i] for key in WEIGHT_NAMES})
             for i in range(S)]
    return TrainRun(settings, tokens, snaps, data["history_loss"].tolist(), data["history_first"].tolist(),
                    data["history_second"].tolist(), device=device, elapsed_s=float(elapsed), notes=notes)


def max_run_bytes() -> int:
    """The most memory a run file's arrays may take: MAX_RUN_BYTES, or half the memory free now."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return min(MAX_RUN_BYTES, int(line.split()[1]) * 1024 // 2)
    except (OSError, ValueError, IndexError):
        pass
    return MAX_RUN_BYTES
