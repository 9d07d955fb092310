"""core.csv_writer writes the same bytes as the per-cell writer it replaced, chunk by chunk."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core import csv_writer
from core.config import AttentionConfig
from core.export import export_lead, export_trace, slice_filename, slice_labels, slices
from core.trace import build_trace


# ---- the reference: core.export's writer before the fast one, kept verbatim -------------------
def _reference_cell(text) -> str:
    text = str(text)
    if any(ch in text for ch in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def reference_csv(arr, row_labels, col_labels, corner="") -> bytes:
    digits = 17 if arr.dtype == np.float64 else 9
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    buf = io.StringIO()
    buf.write(",".join([_reference_cell(corner)] + [_reference_cell(c) for c in col_labels]) + "\n")
    line = ",".join([f"%.{digits}g"] * arr.shape[1])
    for label, row in zip(row_labels, arr.tolist()):
        buf.write(_reference_cell(label) + "," + line % tuple(row) + "\n")
    return buf.getvalue().encode("utf-8")


def fast_csv(arr, row_labels, col_labels, corner="") -> bytes:
    buf = io.BytesIO()
    csv_writer.write_slice_to(buf, arr, row_labels, col_labels, corner)
    return buf.getvalue()


def labels(n, prefix="r"):
    return [f"{prefix}{i}" for i in range(n)]


def assert_same(arr, rows=None, cols=None, corner="query\\key"):
    arr = np.asarray(arr)
    shape = arr.reshape(1, -1).shape if arr.ndim == 1 else arr.shape
    rows = labels(shape[0]) if rows is None else rows
    cols = labels(shape[1], "c") if cols is None else cols
    expected = reference_csv(arr, rows, cols, corner)
    got = fast_csv(arr, rows, cols, corner)
    if got != expected:  # name the first differing line, not two 10 MB blobs
        for i, (a, b) in enumerate(zip(got.split(b"\n"), expected.split(b"\n"))):
            assert a == b, f"line {i} differs"
    assert got == expected


# ---- traces ---------------------------------------------------------------------------------------
TRACES = {
    "book": AttentionConfig(),
    "dropout_batch_bias": AttentionConfig(dropout=0.5, batch=2, qkv_bias=True, num_heads=2, d_out=4),
    "float64": AttentionConfig(dtype="float64", dropout=0.1),
    "random_48": AttentionConfig(embeddings="random", text=" ".join(f"t{i}" for i in range(40)),
                                 d_in=48, d_out=48, num_heads=4, init="linear", seed=7),
    "not_causal": AttentionConfig(embeddings="random", text="a b, c \"d\" é 日本", d_in=8, d_out=8,
                                  num_heads=2, causal=False),
}


@pytest.mark.parametrize("name", sorted(TRACES))
def test_every_slice_of_a_trace_is_byte_identical(name):
    trace = build_trace(TRACES[name])
    checked = 0
    for item in trace:
        rows, cols, corner = slice_labels(item)
        for _index, arr in slices(item):
            assert_same(arr, rows, cols, corner)
            checked += 1
    assert checked >= 40


def test_export_trace_writes_the_reference_bytes(tmp_path):
    trace = build_trace(TRACES["dropout_batch_bias"])
    out = export_trace(trace, tmp_path / "out", fmt="csv")
    for item in trace:
        rows, cols, corner = slice_labels(item, export_lead(item))     # the labels the export writes
        for index, arr in slices(item):
            assert (out / slice_filename(item, index)).read_bytes() == reference_csv(arr, rows, cols, corner)


# ---- adversarial values ---------------------------------------------------------------------------
def _specials(dtype):
    info = np.finfo(dtype)
    return np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, info.max, -info.max, info.tiny, -info.tiny,
                     info.smallest_subnormal, -info.smallest_subnormal, 1e-45, 3e38, -3e38, 1.0, -1.0, 0.5,
                     1e-5, 1e-4, 9.99999e-5, 0.0001, 1e8, 1e9, 999999999.0, 123456789.0, 1234567890.0,
                     1e16, 1e17, 0.1, 0.2, 0.3, 2.5, 1e-40, 1e-38, 1e-30, 1e30, 65504.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    with np.errstate(over="ignore"):
        arr = _specials(dtype).astype(dtype)
    assert_same(arr.reshape(2, -1))
    assert_same(arr.reshape(-1, 1))


def test_powers_of_ten_and_their_float32_neighbours():
    """Where log10 is one off and where the nine digits round up to the next power of ten."""
    p = np.array([10.0 ** k for k in range(-45, 39)], dtype=np.float64)
    with np.errstate(over="ignore"):
        base = p.astype(np.float32)
    near = [base]
    for _ in range(3):
        near.append(np.nextafter(near[-1], np.float32(np.inf)))
    down = [base]
    for _ in range(3):
        down.append(np.nextafter(down[-1], np.float32(0)))
    arr = np.concatenate(near + down)
    arr = np.concatenate([arr, -arr])
    assert_same(arr.reshape(8, -1))


def test_random_float32_bit_patterns():
    """Every float32 class (normal, subnormal, NaN payloads, ties on the ninth digit) at random."""
    rng = np.random.default_rng(2024)
    arr = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    with np.errstate(invalid="ignore"):
        assert_same(arr.reshape(400, 500))


def test_float32_values_that_round_on_a_tie():
    """float32 values with exactly ten significant digits, the last a 5: %.9g rounds them half to even."""
    odd = np.arange(1, 512, 2)
    values = np.concatenate([n + odd / 512 for n in range(1, 10)]           # 1.001953125 …
                            + [n + odd[:128] / 256 for n in range(10, 100, 7)])  # 10.00390625 …
    arr = values.astype(np.float32)
    assert np.array_equal(arr.astype(np.float64), values)  # exactly representable
    exact = [f"{v:.12f}".rstrip("0").replace(".", "") for v in values]
    assert all(len(e) == 10 and e.endswith("5") for e in exact)  # every one is a tie
    arr = np.concatenate([arr, -arr, arr / 1024, arr * 2**20])
    assert_same(arr.reshape(-1, 64))


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 1e3, 1e7])
def test_normal_values_at_several_scales(scale):
    rng = np.random.default_rng(int(scale * 1e6) % 1000)
    assert_same((rng.standard_normal((64, 96)) * scale).astype(np.float32))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=12),
                  elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_any_float32_array(arr):
    assert_same(arr)


# ---- labels and shapes ----------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["a,b", 'say "hi"', "two\nlines", "cr\rhere", " padded ", "日本語", "é",
                                   "", "tab\tin", "nul\0byte", "🙂", ",", '"', 7, -1.5])
def test_labels_are_quoted_as_before(label):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    assert_same(arr, [label, "plain"], [label, "x", label], corner=label)


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (17, 1), (3, 0), (0, 4), (0, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes(shape, dtype):
    rng = np.random.default_rng(1)
    assert_same(rng.standard_normal(shape).astype(dtype))


def test_one_dimensional_array_is_one_row():
    assert_same(np.array([1.5, -2.0, 1e-7], dtype=np.float32), ["b_out"], ["o0", "o1", "o2"], "out")
    assert fast_csv(np.array([1.5, -2.0], dtype=np.float32), ["b"], ["x", "y"]) == b",x,y\nb,1.5,-2\n"


@pytest.mark.parametrize("rows", [2, 5, 9])
def test_row_labels_shorter_or_longer_than_the_rows(rows):
    """As zip() did: rows without a label are dropped, extra labels ignored."""
    arr = np.linspace(-1, 1, 5 * 4, dtype=np.float32).reshape(5, 4)
    assert_same(arr, labels(rows), labels(4, "c"))


def test_other_dtypes_take_the_python_path():
    assert_same(np.arange(12, dtype=np.int64).reshape(3, 4) * 123456789)
    assert_same(np.array([[True, False]]))
    assert_same(np.array([[1.5, 65504, 6e-8]], dtype=np.float16))


# ---- chunks, threads and bounded memory ------------------------------------------------------------
@pytest.mark.parametrize("chunk_cells", [1, 7, 64])
def test_many_small_chunks_on_threads(monkeypatch, chunk_cells):
    monkeypatch.setattr(csv_writer, "CHUNK_CELLS", chunk_cells)
    rng = np.random.default_rng(3)
    arr = (rng.standard_normal((37, 11)) * 10.0 ** rng.integers(-8, 8, (37, 11))).astype(np.float32)
    arr[::5, ::3] = np.nan
    assert_same(arr)


class _Recorder(io.RawIOBase):
    """A binary sink that remembers its largest single write."""

    def __init__(self):
        self.largest = 0
        self.total = 0

    def writable(self):
        return True

    def write(self, data):
        self.largest = max(self.largest, len(data))
        self.total += len(data)
        return len(data)


def test_a_large_slice_is_streamed_in_bounded_pieces():
    rng = np.random.default_rng(4)
    arr = rng.random((1024, 1024), dtype=np.float32)
    sink = _Recorder()
    csv_writer.write_slice_to(sink, arr, labels(1024), labels(1024, "c"))
    assert sink.total > 10_000_000
    # one chunk of rows at most (16 bytes per cell is more than any float32 needs)
    assert sink.largest <= csv_writer.CHUNK_CELLS * 16 + 1024 * 16
    assert sink.largest < sink.total / 8


def test_write_slice_writes_a_file(tmp_path):
    arr = np.array([[1.0, -np.inf], [np.nan, 2.5e-8]], dtype=np.float32)
    csv_writer.write_slice(tmp_path / "m.csv", arr, ["a", "b"], ["x", "y"], "q\\k")
    assert (tmp_path / "m.csv").read_bytes() == b"q\\k,x,y\na,1,-inf\nb,nan,2.50000003e-08\n"


# ---- the fast path's shortcuts: each one against the reference -------------------------------------
def test_every_subnormal_exponent_and_its_neighbours():
    """Subnormals (the exponent table is several decades low there) and the normal values next to them."""
    bits = np.concatenate([np.arange(1, 1 << 12, dtype=np.uint32), (1 << np.arange(23, dtype=np.uint32)) - 1,
                           (1 << np.arange(23, dtype=np.uint32)), np.arange(0x7FF000, 0x801000, dtype=np.uint32)])
    arr = np.concatenate([bits, bits | np.uint32(0x80000000)]).view(np.float32)
    assert_same(arr[: arr.size // 64 * 64].reshape(-1, 64))


def test_a_chunk_of_ties_inside_the_exact_range():
    """Every magnitude in [1e-4, 1e9): the tie check is skipped, rint's ties to even must match %."""
    odd = np.arange(1, 512, 2)
    ties = np.concatenate([n + odd / 512 for n in range(1, 10)]).astype(np.float32)
    arr = np.concatenate([ties, -ties, ties * 2**10])   # 1.001953125 … 9998.0 …: ten digits, the last a 5
    assert 1e-4 <= np.abs(arr).min() and np.abs(arr).max() < 1e9
    assert_same(arr.reshape(-1, 48))
    # the edges of that range and just outside it, alone in their chunks
    edge = np.array([1e-4, 1e9], dtype=np.float32)
    for x in (edge, np.nextafter(edge, np.float32(0)), np.nextafter(edge, np.float32(np.inf))):
        assert_same(np.concatenate([x, -x, x * 1.5]).reshape(1, -1))


def test_causal_chunks_whose_last_columns_hold_no_number():
    """The masked triangle (-inf above the diagonal, or 0 after the softmax), nan, -0.0 and inf there."""
    rng = np.random.default_rng(6)
    scores = rng.standard_normal((70, 70)).astype(np.float32)
    upper = np.triu(np.ones((70, 70), dtype=bool), 1)
    for fill in (-np.inf, 0.0, -0.0, np.nan, np.inf):
        assert_same(np.where(upper, np.float32(fill), scores))
    mixed = np.where(upper, np.float32(-np.inf), scores)
    mixed[3, 60:] = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 0.0, 1e-45, -0.0, 5.0]
    mixed[5, 69] = np.float32(-np.nan)
    assert_same(mixed)


@pytest.mark.parametrize("chunk_cells", [1, 70, 1 << 16])
def test_chunks_holding_no_number_at_all(monkeypatch, chunk_cells):
    monkeypatch.setattr(csv_writer, "CHUNK_CELLS", chunk_cells)
    for fill in (0.0, -0.0, np.nan, -np.inf):
        assert_same(np.full((5, 14), fill, dtype=np.float32))
    arr = np.full((6, 9), -np.inf, dtype=np.float32)
    arr[5, :3] = [0.5, -0.0, 7.0]           # one row with numbers: the chunks before it hold none
    assert_same(arr)


def test_the_exponent_table_is_never_too_high():
    """A float32's decimal exponent is the table's by its top 12 bits, or more (then corrected)."""
    from fractions import Fraction
    for top in range(0xFF0):
        for bits in (max(top << 19, 1), (top << 19) | 0x7FFFF):
            v = Fraction(float(np.uint32(bits).view(np.float32)))
            e = int(csv_writer._EXP10_OF_BITS[top])
            assert Fraction(10) ** e <= v, hex(bits)


# ---- many files: the pipeline -----------------------------------------------------------------------
def test_write_files_writes_each_file_in_order_and_copies_the_same_ones(tmp_path):
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((n, 5)).astype(np.float32) for n in (1, 300, 2, 40)]
    files = [csv_writer.SliceFile(tmp_path / f"{i}.csv", a, labels(len(a)), labels(5, "c"), "r\\c")
             for i, a in enumerate(arrays)]
    files.append(csv_writer.SliceFile(tmp_path / "copy.csv", None, same_as=tmp_path / "1.csv"))
    done = list(csv_writer.write_files(files))
    assert done == [f.path for f in files]
    for f, a in zip(files, arrays):
        assert f.path.read_bytes() == reference_csv(a, labels(len(a)), labels(5, "c"), "r\\c")
    assert (tmp_path / "copy.csv").read_bytes() == (tmp_path / "1.csv").read_bytes()


def test_write_files_stops_on_an_error_and_closes_its_file(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_writer, "CHUNK_CELLS", 10)
    arr = np.ones((50, 5), dtype=np.float32)

    def files():
        yield csv_writer.SliceFile(tmp_path / "a.csv", arr, labels(50), labels(5))
        yield csv_writer.SliceFile(tmp_path / "b.csv", arr, labels(50), labels(5))
        raise RuntimeError("stop here")

    written = []
    with pytest.raises(RuntimeError, match="stop here"):
        for path in csv_writer.write_files(files()):
            written.append(path)
    assert written == [tmp_path / "a.csv"]   # b's chunks were queued, its file never finished
    assert (tmp_path / "a.csv").read_bytes() == reference_csv(arr, labels(50), labels(5))


def test_at_most_ahead_chunks_are_formatted_before_the_first_write(monkeypatch):
    """Streaming: a big slice never has all its chunks formatted before it starts to be written."""
    formatted = []
    real = csv_writer._float32_rows
    monkeypatch.setattr(csv_writer, "_float32_rows", lambda a, l: formatted.append(1) or real(a, l))
    monkeypatch.setattr(csv_writer, "CHUNK_CELLS", 256)

    class Sink(io.RawIOBase):
        def writable(self):
            return True

        def write(self, data):
            seen.append(len(formatted))
            return len(data)

    seen: list[int] = []
    arr = np.random.default_rng(9).random((400, 64), dtype=np.float32)   # 100 chunks
    csv_writer.write_slice_to(Sink(), arr, labels(400), labels(64, "c"))
    assert len(formatted) == 100
    # the header, then each chunk as it comes: at most AHEAD pieces queued, THREADS being formatted
    assert max(n - i for i, n in enumerate(seen)) <= csv_writer.AHEAD + csv_writer.THREADS


def test_export_copies_only_bit_identical_slices(tmp_path):
    """W_query is the same in three stages (copied); -0.0 and 0.0 print differently (formatted)."""
    from core.export import _csv_files, _same_bits
    trace = build_trace(TRACES["random_48"])
    tensors: list = []
    files = list(_csv_files(trace, tmp_path, tensors))
    copied = {f.path.relative_to(tmp_path).as_posix(): f.same_as.relative_to(tmp_path).as_posix()
              for f in files if f.same_as is not None}
    assert copied["causal/W_query.csv"] == "trainable/W_query.csv"
    assert copied["multihead/W_query.csv"] == "trainable/W_query.csv"
    for f in files:
        if f.same_as is not None:
            src = next(g for g in files if g.path == f.same_as)
            assert src.same_as is None and _same_bits(src.arr, f.arr)
            assert (src.row_labels, src.col_labels, src.corner) == (f.row_labels, f.col_labels, f.corner)
    assert len(tensors) == len(files)
    zero = np.zeros((3, 3), dtype=np.float32)
    assert not _same_bits(zero, -zero) and _same_bits(zero, zero.copy())
    nan = np.full(4, np.nan, dtype=np.float32)
    assert _same_bits(nan, nan.copy()) and not _same_bits(nan, -nan)


def _near_ties(binade: int, e: int, within: float) -> np.ndarray:
    """The float32 in [2^binade, 2^(binade+1)) whose exact nine-digit scaling v·10^(8−e) lies
    within ``within`` of a tie (x.5) without being one: found with exact integer arithmetic.

    v = m·2^-q (m the 24-bit significand), so the fraction of v·10^k is ((m·10^k) mod 2^q) / 2^q."""
    q, k = 23 - binade, 8 - e
    assert 0 < q < 64 and k > 0
    m = np.arange(1 << 23, 1 << 24, dtype=np.uint64)
    frac = (m * np.uint64(10 ** k % (1 << q))) & np.uint64((1 << q) - 1)   # wraps mod 2^64: fine mod 2^q
    off_tie = np.abs(frac.astype(np.float64) / 2.0 ** q - 0.5)
    values = (m.astype(np.float64) * 2.0 ** -q).astype(np.float32)      # exact: 24 bits
    in_decade = (values >= 10.0 ** e) & (values < 10.0 ** (e + 1))
    return values[in_decade & (off_tie < within) & (off_tie > 0)]


def test_values_next_to_a_tie_where_float64_scaling_is_inexact():
    """Below 1e-4 y = |v|·10^(8−e) is rounded; these cells go to Python's correctly rounded %."""
    pairs = [(b, e) for b in range(-40, -28) for e in (math.floor(b * math.log10(2)), math.floor((b + 1) * math.log10(2)))]
    arr = np.concatenate([_near_ties(b, e, 1e-6) for b, e in dict.fromkeys(pairs)])
    assert arr.size > 100
    assert_same(np.concatenate([arr, -arr])[: arr.size // 16 * 32].reshape(-1, 16))


def test_a_stop_inside_one_large_slice_is_seen_within_a_chunk(tmp_path, monkeypatch):
    """Issue 19, cause 11: a cancel (or Ctrl-C turned into one) must not wait for a large slice's
    file to finish: ``check`` runs before each chunk is written, and what it raises stops there."""
    monkeypatch.setattr(csv_writer, "CHUNK_CELLS", 50)
    arr = np.arange(200 * 10, dtype=np.float32).reshape(200, 10)           # 40 chunks of 5 rows
    calls = {"n": 0}

    class Stop(Exception):
        pass

    def check():
        calls["n"] += 1
        if calls["n"] == 4:                                                # open, header, 1 chunk, then stop
            raise Stop()

    written = []
    with pytest.raises(Stop):
        for path in csv_writer.write_files([csv_writer.SliceFile(tmp_path / "a.csv", arr, labels(200), labels(10))],
                                           check):
            written.append(path)
    assert written == [] and calls["n"] == 4
    text = (tmp_path / "a.csv").read_bytes()                               # the staged file, closed, partial
    full = reference_csv(arr, labels(200), labels(10))
    assert full.startswith(text) and text.count(b"\n") == 1 + 5           # the header and one chunk of rows


def test_a_signal_while_the_workers_start_never_hangs_the_exit():
    """Issue 19, cause 7: SIGTERM right as an export began (its first chunk starts the worker
    threads) printed "terminated" and then hung for ever: a ThreadPoolExecutor's thread started
    but not yet registered is never woken at exit, and exit waits for it. Here the signal is
    simulated (KeyboardInterrupt raised right after the first thread starts); the process must end."""
    import subprocess
    import sys
    code = "\n".join([
        "import threading, core.csv_writer as w",
        "real = threading.Thread.start",
        "def start(self):",
        "    real(self)",
        "    threading.Thread.start = real",
        "    raise KeyboardInterrupt",
        "threading.Thread.start = start",
        "try:",
        "    w._pool().submit(int, 1).result()",
        "except KeyboardInterrupt:",
        "    print('interrupted')",
    ])
    root = Path(__file__).resolve().parents[2]
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung at exit")
    assert proc.returncode == 0 and proc.stdout == "interrupted\n", proc.stderr
