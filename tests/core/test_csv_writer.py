"""core.csv_writer writes the same bytes as the per-cell writer it replaced, chunk by chunk."""
from __future__ import annotations

import io

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
