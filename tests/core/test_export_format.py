"""slice_csv's fast formatting writes exactly what format_value writes, cell by cell."""
from __future__ import annotations

import numpy as np
import pytest

from core.export import format_value, slice_csv


@pytest.mark.parametrize("dtype,digits", [(np.float32, 9), (np.float64, 17)])
def test_slice_csv_cells_match_format_value(dtype, digits):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((7, 5)) * 10.0 ** rng.integers(-40, 30, (7, 5))).astype(dtype)
    arr[0, :4] = [-np.inf, np.inf, np.nan, -0.0]
    arr[1, 0] = np.finfo(dtype).tiny / 8          # a subnormal
    text = slice_csv(arr, [f"r{i}" for i in range(7)], [f"c{j}" for j in range(5)], "row\\col")
    lines = text.splitlines()
    assert lines[0] == "row\\col,c0,c1,c2,c3,c4"
    for i, line in enumerate(lines[1:]):
        cells = line.split(",")
        assert cells[0] == f"r{i}"
        assert cells[1:] == [format_value(v, digits) for v in arr[i]]


def test_slice_csv_one_row_and_empty():
    assert slice_csv(np.array([1.5, -2.0], dtype=np.float32), ["b"], ["x", "y"]) == ",x,y\nb,1.5,-2\n"
    assert slice_csv(np.zeros((2, 0), dtype=np.float32), ["a", "b"], []) == "\na,\nb,\n"
