"""Write one 2-D slice as CSV, fast: float32 numbers formatted by numpy, streamed to the file.

The text is byte for byte what ``"%.9g" % v`` (float32) or ``"%.17g" % v`` (other floats)
writes per cell, with the same labels, quoting and ``\\n`` line ends as ``core.export``'s
per-cell writer. For float32 the digits come from one vectorised pass per chunk of rows:

1. ``y = |v| · 10^(8−e)`` in float64, e = the decimal exponent. A float32 has 24 bits, so
   ``y`` lies in [1e8, 1e9) within a few float64 roundings (< 1e-6) of the exact value;
   the nine digits are ``rint(y)`` unless ``y`` is that close to a tie (x.5) or to 1e9 —
   those few cells are formatted by Python's own ``%`` (correctly rounded, ties to even).
2. Each cell becomes a 32-byte record of bytes in print order (sign, "0.000" lead, digits
   with a '.' slot after each, exponent, separator), built from small lookup tables with
   uint64 operations; bytes a cell does not print are 0. Each row starts with its label.
3. Dropping the zero bytes of the chunk (``bytes.translate``) gives the chunk's text.

Chunks of rows are formatted on two threads (numpy releases the GIL in its loops) and
written in order, so memory stays bounded by a few chunks, never a whole slice.
"""
from __future__ import annotations

import concurrent.futures
import functools
import math
import struct
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

# Cells per chunk: big enough that numpy's per-call overhead vanishes, small enough that the
# temporaries (~100 bytes per cell) stay a few MB.
CHUNK_CELLS = 1 << 17
THREADS = 2
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


# Lookup tables for the record words (see _records), by key = (exp10 + 64) · 10 + significant digits.
_LAYOUTS = [_layout(key // 10 - 64, key % 10) for key in range(1280)]
_WORD0, _KEEP1, _DOT1, _KEEP2, _WORD2, _WORD3 = (_table(lay[name] for lay in _LAYOUTS)
                                                  for name in ("word0", "keep1", "dot1", "keep2", "word2", "word3"))
_SIGN = _table([0, _word({0: _MINUS})])                                   # by signbit
_GROUP_WORDS = _table(_word({2 * i: ord(ch) for i, ch in enumerate(f"{g:04d}")}) for g in range(10000))
# floor(log10) of the smallest float32 whose bits start with these 12 (exponent and 4 mantissa
# bits, sign cleared): the decimal exponent of every float32 there, or one less
_EXP10_OF_BITS = np.array([math.floor(math.log10(max(struct.unpack("<f", struct.pack("<I", k << 19))[0], 1e-45)))
                           if k < 0xFF0 else 0 for k in range(4096)], dtype=np.int32)
_TRAILING = np.array([4 if g == 0 else len(f"{g:04d}") - len(f"{g:04d}".rstrip("0")) for g in range(10000)],
                     dtype=np.int8)
_SEP_COMMA = np.uint64(_word({3: ord(",")}))
_SEP_NEWLINE = np.uint64(_word({3: ord("\n")}))
# 10^k for k ≥ 0 and 10^-k for k < 0, indexed by k + 22: exactly representable in float64
_POW10_UP = np.array([10.0 ** max(k, 0) for k in range(-22, 23)])
_POW10_DOWN = np.array([10.0 ** max(-k, 0) for k in range(-22, 23)])


def cell(text) -> str:
    """A label as a CSV cell: quoted when it holds a comma, quote, line break or edge spaces."""
    text = str(text)
    if any(ch in text for ch in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def write_slice(path: str | Path, arr: np.ndarray, row_labels: Sequence, col_labels: Sequence,
                corner: str = "") -> None:
    """Write ``arr`` (2-D, or 1-D as one row) with its labels as CSV to ``path``."""
    with open(path, "wb") as fh:
        write_slice_to(fh, arr, row_labels, col_labels, corner)


def write_slice_to(fh: BinaryIO, arr: np.ndarray, row_labels: Sequence, col_labels: Sequence,
                   corner: str = "") -> None:
    """Stream the CSV of one slice into a binary file object (see ``write_slice``)."""
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)  # (n,) -> (1, n)
    fh.write(_header(str(corner), tuple(map(str, col_labels))))
    labels = list(_row_cells(tuple(str(label) for label, _ in zip(row_labels, range(arr.shape[0])))))
    arr = arr[:len(labels)]  # rows without a label are not written (as zip() drops them)
    if not labels:
        return
    fast = arr.dtype == np.float32 and arr.shape[1] > 0 and not any("\0" in s for s in labels)
    chunks = _row_chunks(len(labels), arr.shape[1])
    if not fast:
        for start, stop in chunks:
            fh.write(_python_rows(arr[start:stop], labels[start:stop]))
        return
    encoded = list(_encoded(tuple(labels)))
    if len(chunks) == 1:
        fh.write(_float32_rows(arr, encoded))
        return
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        # at most THREADS + 1 chunks formatted ahead of the file: memory stays bounded
        pending = []
        for start, stop in chunks:
            pending.append(pool.submit(_float32_rows, arr[start:stop], encoded[start:stop]))
            if len(pending) > THREADS:
                fh.write(pending.pop(0).result())
        for fut in pending:
            fh.write(fut.result())


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


def _float32_rows(arr: np.ndarray, labels: list[bytes]) -> bytes:
    """Rows of a float32 array (each ``label,`` first) as CSV bytes, formatted by numpy."""
    rows, cols = arr.shape
    head = -(-max(len(s) for s in labels) // 8)  # label words per row
    # one uint64 matrix per chunk: each row's label (zero-padded), then its cells' records
    words = np.zeros((rows, head + 4 * cols), dtype="<u8")
    text = np.frombuffer(b"".join(s.ljust(8 * head, b"\0") for s in labels), dtype="<u8")
    words[:, :head] = text.reshape(rows, head)
    rec = words[:, head:].reshape(rows, cols, 4)  # a view: (rows, 4·cols) -> (rows, cols, 4)
    with np.errstate(invalid="ignore"):  # signalling NaN payloads warn when widened; they print as nan
        _records(np.ascontiguousarray(arr), rec)
    rec[:, :, 3] |= _SEP_COMMA
    rec[:, -1, 3] ^= _SEP_COMMA ^ _SEP_NEWLINE
    return words.tobytes().translate(None, b"\0")


def _records(values: np.ndarray, rec: np.ndarray) -> None:
    """Fill ``rec[..., 0:4]`` with one record of four little-endian uint64 words (32 bytes) per value.

    Byte slots in print order, 0 where nothing is printed:
    word 0: sign, '0', '.', 0, 0, 0 (the lead of 0.000ddd), d0, '.'
    word 1: d1 . d2 . d3 . d4 .      word 2: d5 . d6 . d7 . d8, 'e'
    word 3: exponent sign, two exponent digits, separator.
    """
    neg = np.signbit(values)
    regular = np.isfinite(values) & (values != 0)
    ax32 = np.where(regular, np.abs(values), np.float32(1.0))
    exp10 = _EXP10_OF_BITS[ax32.view(np.uint32) >> 19]   # decimal exponent, maybe one too low
    ax = ax32.astype(np.float64)
    y = _scale(ax, 8 - exp10)
    off = (y < 1e8) | (y >= 1e9)
    if off.any():  # next to a power of ten, or subnormal: exact exponent for those few
        idx = np.nonzero(off)
        e = np.floor(np.log10(ax[idx])).astype(np.int32)
        ys = _scale(ax[idx], 8 - e)
        e += (ys >= 1e9).astype(np.int32) - (ys < 1e8).astype(np.int32)
        exp10[idx], y[idx] = e, _scale(ax[idx], 8 - e)
    r = np.rint(y)
    # y is within 1e-6 of exact: rint is the correct rounding unless y is that close to a tie
    exact = (np.abs(y - r) < 0.5 - 2e-6) & (r >= 1e8) & (r < 1e9)
    digits = r.astype(np.uint32)
    lead, rest = np.divmod(digits, np.uint32(100000000))
    hi, lo = np.divmod(rest, np.uint32(10000))
    trailing = np.where(lo != 0, _TRAILING[lo], _TRAILING[hi] + 4)
    key = (exp10 + 64) * 10 + (9 - trailing)   # (decimal exponent, significant digits)
    # rec is little-endian ("<u8") whatever the machine: its bytes are in slot order
    rec[..., 0] = _SIGN[neg.view(np.uint8)] | _WORD0[key] | (lead.astype(np.uint64) + _ZERO) << np.uint64(48)
    rec[..., 1] = _GROUP_WORDS[hi] & _KEEP1[key] | _DOT1[key]
    rec[..., 2] = _GROUP_WORDS[lo] & _KEEP2[key] | _WORD2[key]
    rec[..., 3] = _WORD3[key]
    _fill_special(rec, values, neg, regular)
    for i in zip(*np.nonzero(regular & ~exact)):  # near a tie: Python's correctly rounded %
        _put(rec, i, "%.9g" % float(values[i]))


def _scale(ax: np.ndarray, k: np.ndarray) -> np.ndarray:
    """ax · 10^k in float64 with at most four roundings (|k| ≤ 53: powers beyond 1e±22 split)."""
    out = ax
    for _ in range(2):
        big, small = k > 22, k < -22
        if not (big.any() or small.any()):
            break
        out = np.where(big, out * 1e22, np.where(small, out / 1e22, out))
        k = k - 22 * big + 22 * small
    return out * _POW10_UP[k + 22] / _POW10_DOWN[k + 22]


def _put(rec: np.ndarray, i, text: str) -> None:
    """Write ``text`` (at most 28 bytes) as the record(s) ``i``, keeping their separators at 0."""
    row = np.zeros(32, dtype=np.uint8)
    row[:len(text)] = np.frombuffer(text.encode(), dtype=np.uint8)
    rec[i] = row.view("<u8")


def _fill_special(rec: np.ndarray, values: np.ndarray, neg: np.ndarray, regular: np.ndarray) -> None:
    """0, -0, nan, inf and -inf, written as '%.9g' writes them."""
    if regular.all():
        return
    zero = values == 0
    for mask, text in ((zero & ~neg, "0"), (zero & neg, "-0"), (np.isnan(values), "nan"),
                       (np.isposinf(values), "inf"), (np.isneginf(values), "-inf")):
        if mask.any():
            _put(rec, mask, text)
