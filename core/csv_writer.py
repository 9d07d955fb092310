"""Write one 2-D slice as CSV, fast: float32 numbers formatted by numpy, streamed to the file.

The text is byte for byte what ``"%.9g" % v`` (float32) or ``"%.17g" % v`` (other floats)
writes per cell, with the same labels, quoting and ``\\n`` line ends as ``core.export``'s
per-cell writer. For float32 the digits come from one vectorised pass per chunk of rows:

1. ``y = |v| · 10^(8−e)`` in float64, e = the decimal exponent (from a table by the top 12
   bits, corrected for the few cells where it is one too low), one multiplication by 10^(8−e)
   rounded to float64: ``y`` lies in [1e8, 1e9) within 2.3e-7 of the exact value, and is exact
   for 1e-4 ≤ |v| < 1e9 (10^(8−e) and the product fit in 53 bits). The nine digits are
   ``rint(y)`` (ties to even, as ``%``) unless an inexact ``y`` is that close to a tie (x.5) or
   to 1e9 — those few cells are formatted by Python's own ``%`` (correctly rounded).
2. Each cell becomes a 32-byte record of bytes in print order (sign, "0.000" lead, digits
   with a '.' slot after each, exponent, separator): a template row looked up by the cell's
   key (sign, exponent, significant digits) with the digits OR-ed in from small tables, all in
   uint64 operations; bytes a cell does not print are 0. Each row starts with its label.
   0, -0, nan and ±inf take their text from the same tables (special keys); columns of a chunk
   that hold nothing else (a causal matrix's masked triangle) skip the digits altogether.
3. Dropping the zero bytes of the chunk (``np.compress``, which releases the GIL) gives the
   chunk's text, written to the file as it is (no copy to ``bytes``).

Chunks of rows are formatted on two threads (numpy releases the GIL in its loops) a few
chunks ahead — across files, with ``write_files`` — and written in order by the caller's
thread, so memory stays bounded by a few chunks, never a whole slice.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import fractions
import functools
import math
import os
import queue
import shutil
import struct
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Sequence

import numpy as np

# Cells per chunk: big enough that numpy's per-call overhead vanishes, small enough that the
# temporaries (~100 bytes per cell) stay a few MB (64 rows of 1024: 53 ns/cell, 128: 56, 256: 140
# on a 2-core EPYC — bigger temporaries fall out of the caches).
CHUNK_CELLS = 1 << 16
THREADS = 2
# Pieces (chunks, headers) queued ahead of the one being written: memory ~0.8 MB of text per
# chunk, plus the temporaries of the THREADS chunks being formatted.
AHEAD = 8
_ZERO, _MINUS, _DOT, _E, _PLUS = ord("0"), ord("-"), ord("."), ord("e"), ord("+")


def _word(slots: dict[int, int]) -> int:
    """A little-endian uint64 with byte ``i`` = ``slots[i]``."""
    return sum(value << (8 * i) for i, value in slots.items())


def _table(words) -> np.ndarray:
    return np.array(list(words), dtype=np.uint64)


def _layout(exp10: int, significant: int) -> dict[str, int]:
    """The non-digit bytes of one cell with this decimal exponent and these significant digits."""
    fixed = -4 <= exp10 < 9                         # %g's rule for precision 9
    printed = max(significant, exp10 + 1) if fixed and exp10 >= 0 else significant
    if fixed and exp10 >= 0:
        dot = exp10 if significant > exp10 + 1 else None   # 123.45: '.' after d[exp10]
    else:
        dot = 0 if not fixed and significant > 1 else None  # d0.d1…e±XX
    lead = {1: _ZERO, 2: _DOT, **{3 + z: _ZERO for z in range(-exp10 - 1)}} if fixed and exp10 < 0 else {}
    words = {
        "word0": _word({**lead, **({7: _DOT} if dot == 0 else {})}),
        "keep1": _word({2 * i: 0xFF for i in range(4) if 1 + i < printed}),
        "dot1": _word({2 * (dot - 1) + 1: _DOT}) if dot is not None and 1 <= dot <= 4 else 0,
        "keep2": _word({2 * i: 0xFF for i in range(4) if 5 + i < printed}),
        "word2": (_word({2 * (dot - 5) + 1: _DOT}) if dot is not None and 5 <= dot <= 7 else 0)
        | (0 if fixed else _word({7: _E})),
        "word3": 0 if fixed else _word({0: _MINUS if exp10 < 0 else _PLUS, 1: _ZERO + abs(exp10) // 10,
                                        2: _ZERO + abs(exp10) % 10}),
    }
    return words


# Lookup tables for the record words (see _records), by key = (exp10 + 64) · 10 + significant digits
# for a finite non-zero value, 1280 + class (see _CLASS_EDGES) for the others.
_LAYOUTS = [_layout(key // 10 - 64, key % 10) for key in range(1280)]
_WORD0, _KEEP1, _DOT1, _KEEP2, _WORD2, _WORD3 = (_table(lay[name] for lay in _LAYOUTS)
                                                  for name in ("word0", "keep1", "dot1", "keep2", "word2", "word3"))
_SEPARATOR = _word({3: ord(",")})   # every cell ends with its separator; the row's last is made '\n'
_COMMA_TO_NEWLINE = np.uint64(_word({3: ord(",") ^ ord("\n")}))
_SIGN = _table([0, _word({0: _MINUS})])                                   # by sign bit
_LEAD = _table([_word({6: _ZERO + d}) for d in range(10)])                # by first digit
_GROUP_WORDS = _table(_word({2 * i: ord(ch) for i, ch in enumerate(f"{g:04d}")}) for g in range(10000))
# significant digits of the nine ``lead·hi·lo`` (trailing zeros dropped) = max(_SIG_HI[hi], _SIG_LO[lo])
_SIG_LO = np.array([0] + [9 - (len(f"{g:04d}") - len(f"{g:04d}".rstrip("0"))) for g in range(1, 10000)],
                   dtype=np.intp)
_SIG_HI = np.array([1] + [5 - (len(f"{g:04d}") - len(f"{g:04d}".rstrip("0"))) for g in range(1, 10000)],
                   dtype=np.intp)

# The class of a float32 from its bits read as int32: np.searchsorted(_CLASS_EDGES, bits, "right")
# is 0: -0, 1: negative regular, 2: -inf, 3: nan (sign set), 4: 0, 5: regular, 6: inf, 7: nan.
_CLASS_EDGES = np.array([-2**31 + 1, -0x800000, -0x7FFFFF, 0, 1, 0x7F800000, 0x7F800001], dtype=np.int32)
_CLASS_TEXT = ["-0", None, "-inf", "nan", "0", None, "inf", "nan"]     # what '%.9g' writes
_SPECIAL_KEY = np.array([0 if text is None else 1280 + c for c, text in enumerate(_CLASS_TEXT)], dtype=np.intp)
_SPECIAL_WORD0 = _table(0 if text is None else _word(dict(enumerate(text.encode()))) for text in _CLASS_TEXT)
# A special value inside a chunk is formatted as 1.0 with its special key: those rows of the tables
# give its text in word 0 (the lead digit '1' cancelled by the XOR in _regular_records), nothing in
# words 1 and 2, and the separator.
_WORD0 = np.concatenate([_WORD0, _SPECIAL_WORD0 ^ _LEAD[1]])
_KEEP1, _DOT1, _KEEP2, _WORD2 = (np.concatenate([t, np.zeros(8, np.uint64)]) for t in (_KEEP1, _DOT1, _KEEP2, _WORD2))
_WORD3 = np.concatenate([_WORD3, np.zeros(8, np.uint64)]) | np.uint64(_SEPARATOR)
_ONE_BITS = np.uint32(0x3F800000)       # 1.0f
_KEYS = len(_WORD0)                     # 1288; a negative value's key is key + _KEYS
# By key: the template record (all but the digits, sign and lead digit of a negative value's
# included) and the masks keeping the printed digits of words 1 and 2.
_TEMPLATE = np.concatenate([np.stack([_WORD0, _DOT1, _WORD2, _WORD3], axis=1)] * 2)
_TEMPLATE[_KEYS:, 0] |= _SIGN[1]
_TEMPLATE[_KEYS + 1280:] = _TEMPLATE[1280:_KEYS]     # specials carry their own sign
_MASKS = np.concatenate([np.stack([_KEEP1, _KEEP2], axis=1)] * 2)
_SIGN_KEY = np.array([0, _KEYS], dtype=np.intp)       # by sign bit


def _exp10_of_bits(k: int) -> int:
    """floor(log10) of the smallest float32 whose bits start with ``k`` (12 bits: exponent and 4
    mantissa bits, sign cleared), exactly: the decimal exponent of every float32 there, or less."""
    if k >= 0xFF0:
        return 0    # inf/nan: never looked up for a regular value
    smallest = fractions.Fraction(struct.unpack("<f", struct.pack("<I", max(k << 19, 1)))[0])
    e = math.floor(math.log10(smallest))
    while fractions.Fraction(10) ** e > smallest:   # log10's rounding, never trusted near a power of ten
        e -= 1
    while fractions.Fraction(10) ** (e + 1) <= smallest:
        e += 1
    return e


def _pow10(k: int) -> float:
    """10^k correctly rounded to float64 (exact for 0 ≤ k ≤ 22)."""
    return float(fractions.Fraction(10) ** k)


_EXP10_OF_BITS = np.array([_exp10_of_bits(k) for k in range(4096)], dtype=np.intp)
_KEY_OF_BITS = (_EXP10_OF_BITS + 64) * 10                  # the key's exponent part
_POW10 = np.array([_pow10(k) for k in range(-64, 100)])   # by k + 64
_SCALE_OF_BITS = _POW10[8 - _EXP10_OF_BITS + 64]
# y = |v| · 10^(8−e) in float64 is within 2.3e-7 of exact (10^k and the product each rounded once;
# both exact when 0 ≤ 8 − e ≤ 12: 24 + 28 bits); a cell nearer a tie than this margin is formatted
# by Python
_TIE_MARGIN = 0.5 - 2e-6
_ROUNDS_TO_1E9 = 1e9 - 0.5
def _float32_bits_at_least(x: fractions.Fraction) -> np.uint32:
    """The bits of the smallest float32 ≥ x (x > 0)."""
    b = int(np.array(float(x), dtype=np.float32).view(np.uint32))
    while fractions.Fraction(struct.unpack("<f", struct.pack("<I", b))[0]) < x:
        b += 1
    return np.uint32(b)


# magnitudes in [1e-4, 1e9) have 0 ≤ 8 − e ≤ 12: y is exact for all of them
_EXACT_LOW = _float32_bits_at_least(fractions.Fraction(1, 10**4))
_EXACT_HIGH = _float32_bits_at_least(fractions.Fraction(10**9))


def cell(text) -> str:
    """A label as a CSV cell: quoted when it holds a comma, quote, line break or edge spaces."""
    text = str(text)
    if any(ch in text for ch in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


@dataclasses.dataclass(frozen=True)
class SliceFile:
    """One CSV file to write: ``arr`` (2-D, or 1-D as one row) with its labels, or, when
    ``same_as`` names an earlier file of the same ``write_files`` call with the same bytes, a copy
    of that file (the caller vouches that the slice and labels are identical)."""
    path: Path
    arr: np.ndarray | None
    row_labels: Sequence = ()
    col_labels: Sequence = ()
    corner: str = ""
    same_as: Path | None = None


def write_slice(path: str | Path, arr: np.ndarray, row_labels: Sequence, col_labels: Sequence,
                corner: str = "") -> None:
    """Write ``arr`` (2-D, or 1-D as one row) with its labels as CSV to ``path``."""
    for _ in write_files([SliceFile(Path(path), arr, row_labels, col_labels, corner)]):
        pass


def write_slice_to(fh: BinaryIO, arr: np.ndarray, row_labels: Sequence, col_labels: Sequence,
                   corner: str = "") -> None:
    """Stream the CSV of one slice into a binary file object (see ``write_slice``)."""
    for _ in _drain(_pieces(fh, arr, row_labels, col_labels, corner), None):
        pass


def write_files(files: Iterable[SliceFile], check: Callable[[], None] | None = None) -> Iterator[Path]:
    """Write the files in order, yielding each path once its file is complete and closed.

    Chunks of rows are formatted on the worker threads up to ``AHEAD`` pieces ahead of the
    file being written — across file boundaries, so small slices are formatted in parallel too —
    while this thread writes them in order: memory stays bounded by those pieces. ``files`` is
    consumed lazily (a slice is computed, and cancellation can be checked, as its turn nears);
    an exception from it or from a chunk stops the writing and propagates. ``check()`` is called
    before each piece (a chunk of rows, a header) is written; what it raises stops the writing
    likewise, so a cancel is seen within one chunk (~65,000 cells) even inside one large slice.
    """
    def pieces():
        for f in files:
            if f.same_as is not None:
                yield ("copy", f.same_as, f.path)
            else:
                yield ("open", f.path)
                yield from _pieces(None, f.arr, f.row_labels, f.col_labels, f.corner)
                yield ("close", f.path)
    done: list[Path] = []
    run = _drain(pieces(), done, check)
    try:
        for _ in run:
            yield from done
            done.clear()
    finally:
        run.close()


def create_file(path: Path) -> BinaryIO:
    """Open a new file of the export for writing (tests replace it to make a write fail)."""
    return open(path, "wb")


def _pieces(fh, arr, row_labels, col_labels, corner):
    """The pieces of one slice's CSV: ("bytes", data) or ("chunk", function, args)."""
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)  # (n,) -> (1, n)
    if fh is not None:
        yield ("file", fh)
    yield ("bytes", _header(str(corner), tuple(map(str, col_labels))))
    labels = list(_row_cells(tuple(str(label) for label, _ in zip(row_labels, range(arr.shape[0])))))
    arr = arr[:len(labels)]  # rows without a label are not written (as zip() drops them)
    if not labels:
        return
    fast = arr.dtype == np.float32 and arr.shape[1] > 0 and not any("\0" in s for s in labels)
    if fast:
        labels = list(_encoded(tuple(labels)))
    for start, stop in _row_chunks(len(labels), arr.shape[1]):
        yield ("chunk", _float32_rows if fast else _python_rows, (arr[start:stop], labels[start:stop]))


def _drain(pieces, done: list[Path] | None, check: Callable[[], None] | None = None):
    """A generator running the pieces in order — chunks on the pool, at most AHEAD pieces
    queued, the rest here — that yields after each file it closes (appended to ``done``);
    ``check()`` before each piece."""
    queue: collections.deque = collections.deque()
    source = iter(pieces)
    fh = opened = None
    try:
        while True:
            if check is not None:
                check()
            while len(queue) < AHEAD:
                piece = next(source, None)
                if piece is None:
                    break
                if piece[0] == "chunk":
                    piece = ("future", _pool().submit(piece[1], *piece[2]))
                queue.append(piece)
            if not queue:
                return
            kind, *args = queue.popleft()
            if kind == "future":
                fh.write(args[0].result())
            elif kind == "bytes":
                fh.write(args[0])
            elif kind == "file":
                fh = args[0]
            elif kind == "open":
                fh = opened = create_file(args[0])
            elif kind == "close":
                opened.close()
                fh = opened = None
                done.append(args[0])
                yield
            elif kind == "copy":   # the same bytes as an earlier file: no formatting
                with open(args[0], "rb") as src, create_file(args[1]) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                done.append(args[1])
                yield
    finally:
        for kind, *args in queue:
            if kind == "future":
                args[0].cancel()   # one being formatted finishes; its text is dropped
        if opened is not None:
            opened.close()


class _Workers:
    """THREADS daemon threads formatting chunks: ``submit`` returns a concurrent.futures.Future.

    Not a ThreadPoolExecutor: its threads are joined at exit, and a Ctrl-C or SIGTERM raised in
    the main thread while it starts them (the export's first chunk) can leave one that nothing
    wakes, so the process hung at exit after printing "terminated". Daemon threads are never
    waited for; a chunk still being formatted when the process ends is simply dropped."""

    def __init__(self, n: int):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(n):
            threading.Thread(target=self._work, name=f"csv-writer-{i}", daemon=True).start()

    def submit(self, fn, *args) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            future, fn, args = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue   # cancelled while queued
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the writing thread, which raises it
                future.set_exception(exc)


_POOL: _Workers | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    global _POOL
    _POOL = None   # a forked child has none of the parent's threads: it starts its own


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _pool() -> _Workers:
    """The worker threads, started once per process (starting them per file cost ~2 ms each)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = _Workers(THREADS)
        return _POOL


# A trace's slices share their label tuples: cells are quoted and encoded once per tuple.
@functools.lru_cache(maxsize=16)
def _header(corner: str, col_labels: tuple) -> bytes:
    return (",".join([cell(corner)] + [cell(c) for c in col_labels]) + "\n").encode("utf-8")


@functools.lru_cache(maxsize=16)
def _row_cells(row_labels: tuple) -> tuple[str, ...]:
    return tuple(cell(label) + "," for label in row_labels)


@functools.lru_cache(maxsize=16)
def _encoded(cells: tuple) -> tuple[bytes, ...]:
    return tuple(s.encode("utf-8") for s in cells)


def _row_chunks(rows: int, cols: int) -> list[tuple[int, int]]:
    step = max(1, CHUNK_CELLS // max(cols, 1))
    return [(start, min(rows, start + step)) for start in range(0, rows, step)]


def _python_rows(arr: np.ndarray, labels: list[str]) -> bytes:
    """The per-cell formatting (any dtype): what the fast path must reproduce."""
    digits = 17 if arr.dtype == np.float64 else 9
    line = ",".join([f"%.{digits}g"] * arr.shape[1])
    return "".join(label + line % tuple(row) + "\n" for label, row in zip(labels, arr.tolist())).encode("utf-8")


def _float32_rows(arr: np.ndarray, labels: list[bytes]) -> np.ndarray:
    """Rows of a float32 array (each ``label,`` first) as CSV bytes (a uint8 array), formatted by numpy."""
    rows, cols = arr.shape
    head = -(-max(len(s) for s in labels) // 8)  # label words per row
    # the cells' records, then one uint64 matrix: each row's label (zero-padded), then its records
    rec = np.empty((rows, cols, 4), dtype="<u8")
    _records(np.ascontiguousarray(arr), rec)
    rec[:, -1, 3] ^= _COMMA_TO_NEWLINE
    words = np.empty((rows, head + 4 * cols), dtype="<u8")
    words[:, :head] = np.frombuffer(b"".join(s.ljust(8 * head, b"\0") for s in labels), dtype="<u8").reshape(rows, head)
    words[:, head:] = rec.reshape(rows, 4 * cols)
    text = words.view(np.uint8).reshape(-1)   # (rows, 8·(head + 4·cols)) -> (n,): the bytes in order
    return np.compress(text != 0, text)      # numpy drops the unprinted slots without the GIL


def _records(values: np.ndarray, rec: np.ndarray) -> None:
    """Fill ``rec`` (``values.shape + (4,)``, uint64, contiguous) with one 32-byte record per value
    of the 2-D float32 ``values``, its separator (',') included.

    Byte slots in print order, 0 where nothing is printed:
    word 0: sign, '0', '.', 0, 0, 0 (the lead of 0.000ddd), d0, '.'
    word 1: d1 . d2 . d3 . d4 .      word 2: d5 . d6 . d7 . d8, 'e'
    word 3: exponent sign, two exponent digits, separator.
    """
    bits = values.view(np.uint32)
    magnitude = bits & np.uint32(0x7FFFFFFF)
    regular = (magnitude - np.uint32(1)) < np.uint32(0x7F7FFFFF)   # finite, not ±0
    if regular.all():
        _regular_records(bits, magnitude, rec)
        return
    # columns after the last one with a regular value (a causal chunk's masked triangle, -inf
    # or 0) get their text straight from the class
    some = np.flatnonzero(regular.any(axis=0))
    width = int(some[-1]) + 1 if some.size else 0
    if width < bits.shape[1]:
        tail = bits[:, width:].view(np.int32)
        rec[:, width:, 0] = _SPECIAL_WORD0[np.searchsorted(_CLASS_EDGES, tail, side="right")]
        rec[:, width:, 1:3] = 0
        rec[:, width:, 3] = _SEPARATOR
    if width:
        regular = regular[:, :width]
        sane = np.where(regular, bits[:, :width], _ONE_BITS)
        special = _SPECIAL_KEY[np.searchsorted(_CLASS_EDGES, bits[:, :width].view(np.int32), side="right")]
        if width == bits.shape[1]:
            _regular_records(sane, sane & np.uint32(0x7FFFFFFF), rec, special)
        else:
            part = np.empty((bits.shape[0], width, 4), dtype="<u8")   # contiguous, for _regular_records
            _regular_records(sane, sane & np.uint32(0x7FFFFFFF), part, special)
            rec[:, :width] = part


def _regular_records(bits: np.ndarray, magnitude: np.ndarray, rec: np.ndarray,
                     special: np.ndarray | None = None) -> None:
    """``_records`` for finite non-zero values, given as their float32 bits; where ``special`` is
    not 0 (the value there was replaced by 1.0), the record is that special key's text."""
    top = (magnitude >> np.uint32(19)).astype(np.intp)
    # decimal exponent e (maybe one or, for subnormals, a few too low) and y = |v| · 10^(8−e)
    key = _KEY_OF_BITS[top]
    y = magnitude.view(np.float32).astype(np.float64)
    y *= _SCALE_OF_BITS[top]
    off = y >= _ROUNDS_TO_1E9
    if off.any():  # e too low (or the digits round up to 1e9): the exact exponent for those few
        idx = np.flatnonzero(off)
        ax = magnitude.reshape(-1)[idx].view(np.float32).astype(np.float64)
        e = np.floor(np.log10(ax)).astype(np.intp)
        ys = ax * _pow10_array(8 - e)
        e += (ys >= 1e9).astype(np.intp) - (ys < 1e8).astype(np.intp)
        y.reshape(-1)[idx] = ax * _pow10_array(8 - e)
        key.reshape(-1)[idx] = (e + 64) * 10
    r = np.rint(y)
    # rint is the correct rounding (ties to even, as %.9g) unless y is within its error of a tie
    near = r >= 1e9
    if not _EXACT_LOW <= magnitude.min() <= magnitude.max() < _EXACT_HIGH:  # else: y is exact (below)
        near |= np.abs(y - r) >= _TIE_MARGIN
    if near.any():  # ... but y is exact where 10^(8−e) is (e ≤ 8) and needs ≤ 53 bits (e ≥ −4)
        idx = np.flatnonzero(near)
        e = key.reshape(-1)[idx] // 10 - 64
        exact = (e >= -4) & (e <= 8) & (r.reshape(-1)[idx] < 1e9)
        near.reshape(-1)[idx[exact]] = False
    digits = r.astype(np.intp)
    lead, rest = np.divmod(digits, 100000000)
    hi, lo = np.divmod(rest, 10000)
    key += np.maximum(_SIG_HI[hi], _SIG_LO[lo])
    if special is not None:
        np.maximum(key, special, out=key)   # special keys (≥ 1280) win over 1.0's
    key += _SIGN_KEY[bits >> np.uint32(31)]
    flat = rec.reshape(-1, 4)   # (…, 4) -> (n, 4): rec is contiguous
    np.take(_TEMPLATE, key.reshape(-1), axis=0, out=flat, mode="clip")
    masks = np.take(_MASKS, key.reshape(-1), axis=0, mode="clip")
    flat[:, 0] ^= _LEAD[np.minimum(lead, 9).reshape(-1)]
    flat[:, 1] |= _GROUP_WORDS[hi.reshape(-1)] & masks[:, 0]
    flat[:, 2] |= _GROUP_WORDS[lo.reshape(-1)] & masks[:, 1]
    if near.any():
        for i in zip(*np.nonzero(near)):  # near a tie: Python's correctly rounded %
            _put(rec, i, "%.9g" % float(bits[i].view(np.float32)))


def _pow10_array(k: np.ndarray) -> np.ndarray:
    return _POW10[k + 64]


def _put(rec: np.ndarray, i, text: str) -> None:
    """Write ``text`` (at most 27 bytes) and its separator as the record(s) ``i``."""
    row = np.zeros(32, dtype=np.uint8)
    row[:len(text)] = np.frombuffer(text.encode(), dtype=np.uint8)
    row[27] = ord(",")
    rec[i] = row.view("<u8")
