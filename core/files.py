"""Reading a learner's text file (an embeddings CSV, a lesson) without hanging or exhausting memory,
and checking a file a command will write before it spends minutes measuring.

The path is checked to be a regular file of bounded size *before* it is opened (opening a FIFO
waits for a writer for ever; a device never ends), opened non-blocking, checked again on the
open descriptor (the path may have been swapped meanwhile), read up to the bound and decoded as
UTF-8 with or without a BOM. Every problem is a ValueError whose message is one line.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def shown_path(path) -> str:
    """A path as a one-line message shows it: bytes that are not UTF-8 as \\udcXX escapes, long ones shortened."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 100 else text[:60] + "…" + text[-39:]


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n < 10 * 2**20 else f"{n // 2**20} MiB"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_text_file(path: str | Path, max_bytes: int, what: str = "file") -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` (a leading BOM dropped).

    Raises ValueError naming the path and what is wrong: missing, a folder, a FIFO or device,
    too large, unreadable, not UTF-8.
    """
    name = shown_path(path)
    try:
        os.fsencode(path)
    except UnicodeEncodeError:
        raise ValueError(f"{name} cannot be opened: the name contains characters that are not text") from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{name} does not exist") from None
    except NotADirectoryError:
        raise ValueError(f"{name} does not exist (a part of the path is a file)") from None
    except (OSError, ValueError) as exc:      # name too long, permission denied, NUL in the name
        raise ValueError(f"{name} cannot be opened: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{name} is a folder, which is not a file; choose a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{name} is {_kind(st.st_mode)}, not a file; choose a {what}")
    if st.st_size > max_bytes:
        raise ValueError(f"{name} is {_mib(st.st_size)}; a {what} is at most {_mib(max_bytes)}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ValueError(f"{name} cannot be read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)                     # what was opened, not what the path named a moment ago
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{name} is {_kind(st.st_mode)}, not a file; choose a {what}")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ValueError(f"{name} cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:                 # it grew after the check
        raise ValueError(f"{name} is larger than {_mib(max_bytes)}; a {what} is at most {_mib(max_bytes)}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name} cannot be read: it is not UTF-8 text (byte 0x{data[exc.start]:02X} at "
                         f"offset {exc.start}); save it as UTF-8") from None


def write_target_problem(path: str, example: str = "bench.json") -> str | None:
    """Why a file could not be written at ``path`` (checked before the minutes of measuring), else None.

    The folder must exist and take a new file (one is made and removed again), ``path`` must not
    be a folder, a FIFO or a device, nor read-only. ``example``: the file name a folder's message suggests.
    """
    if not path.strip():
        return "is empty; name the file to write the figures to"
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    try:
        if p.is_dir():
            return f"{path} is a folder; name a file in it, e.g. {p / example}"
        if not folder.exists():
            return f"the folder {folder} does not exist"
        if not folder.is_dir():
            return f"{folder} is not a folder"
        if p.exists() and not p.is_file():
            return f"{path} is not a regular file"
        if p.exists() and not os.access(p, os.W_OK):
            return f"{path} is read-only"
        fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except (OSError, ValueError) as exc:   # ValueError: a NUL in the name
        return f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}"
    return None


def new_file_mode() -> int:
    """The mode a file created now gets (0o666 less the process's umask, as open() gives it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:    # read without changing it
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)      # no /proc: the only other way to read it is to set it (and back)
    os.umask(mask)
    return 0o666 & ~mask


def as_umask_allows(fd: int) -> None:
    """Give a mkstemp file (0600) the permissions every other file this app writes has."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, new_file_mode())
