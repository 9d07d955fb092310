"""Undefined values never pass silently (issue 10): an all-zero embedding row (a padding token)
makes ω/Σω 0/0 for that row; the export writes ``nan`` there, lists it under ``notes`` in the
manifest, and the command line says so in one line. Nothing else gets a note (the −∞ of
masked_scores is the design).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from core import AttentionConfig, build_trace
from core.cli import run_export
from core.export import export_trace, read_csv_slice
from core.numerics import summarize_notes, undefined_value_notes

PADDED = "token,e0,e1,e2\nYour,0.43,0.15,0.89\n<pad>,0,0,0\nstep,0.05,0.80,0.55\n"


@pytest.fixture
def padded_csv(tmp_path):
    path = tmp_path / "padded.csv"
    path.write_text(PADDED)
    return path


def test_padding_row_is_nan_in_sumnorm_and_noted(padded_csv, tmp_path):
    trace = build_trace(AttentionConfig(device="cpu", embeddings=str(padded_csv), batch=2))
    sumnorm = trace["simplified", "attn_weights_sumnorm"].numpy()
    # the reference: the book's ω/Σω by hand, in float64; the padding row is 0/0 (3 entries)
    x = np.array([[0.43, 0.15, 0.89], [0, 0, 0], [0.05, 0.80, 0.55]])
    omega = x @ x.T
    with np.errstate(invalid="ignore"):
        expected = omega / omega.sum(axis=1, keepdims=True)
    assert np.isnan(sumnorm[1]).all() and np.isfinite(np.delete(sumnorm, 1, axis=0)).all()
    # tolerance: float32 sums vs float64 reference (rounding of ~3 products), not bit equality
    np.testing.assert_allclose(sumnorm[[0, 2]], expected[[0, 2]], rtol=1e-6, atol=1e-7)

    notes = undefined_value_notes(trace)
    assert notes == [{"stage": "simplified", "name": "attn_weights_sumnorm", "index": [], "value": "nan",
                      "count": 3, "why": notes[0]["why"]}]
    assert "0/0" in notes[0]["why"] and "padding" in notes[0]["why"]

    out = export_trace(trace, tmp_path / "out")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notes"] == notes
    rows, _, values = read_csv_slice(out / "simplified" / "attn_weights_sumnorm.csv")
    assert rows[1] == "<pad>" and np.isnan(values[1]).all()
    assert "nan" in (out / "simplified" / "attn_weights_sumnorm.csv").read_text().splitlines()[2]


def test_command_line_prints_one_line_per_noted_intermediate(padded_csv, tmp_path, capsys):
    assert run_export(["--out", str(tmp_path / "out"), "--embeddings", str(padded_csv), "--device", "cpu"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("note: simplified.attn_weights_sumnorm holds 3 nan (exported as such): ")
    assert err[0].endswith('listed under "notes" in manifest.json')


def test_no_notes_for_the_book_and_masked_minus_inf(tmp_path, capsys):
    trace = build_trace(AttentionConfig(device="cpu", batch=2, num_heads=2, d_out=4))
    assert np.isneginf(trace["causal", "masked_scores"].numpy()).any()   # there, by design
    assert undefined_value_notes(trace) == []
    out = export_trace(trace, tmp_path / "out")
    assert json.loads((out / "manifest.json").read_text())["notes"] == []


def test_scores_that_cancel_give_signed_inf_and_are_noted(tmp_path):
    """Rows whose ω sums to 0 without being 0: ±ω/0 = ±inf in ω/Σω (a division by 0), noted."""
    path = tmp_path / "cancel.csv"
    path.write_text("a,1,0\nb,-1,0\n")
    trace = build_trace(AttentionConfig(device="cpu", embeddings=str(path), d_in=2))
    sumnorm = trace["simplified", "attn_weights_sumnorm"].numpy()
    assert np.isposinf(sumnorm).sum() == 2 and np.isneginf(sumnorm).sum() == 2   # ω = [[1, -1], [-1, 1]]
    notes = [n for n in undefined_value_notes(trace) if n["name"] == "attn_weights_sumnorm"]
    assert [(n["value"], n["count"]) for n in notes] == [("inf", 2), ("-inf", 2)]
    assert all("division by 0" in n["why"] for n in notes)


class _Item:
    """A stand-in intermediate: what undefined_value_notes reads (stage, name, numpy, lead_axes)."""

    def __init__(self, name, arr):
        self.stage, self.name, self._arr = "multihead", name, arr

    def numpy(self):
        return self._arr

    def lead_axes(self):
        return max(self._arr.ndim - 2, 0)


def test_notes_are_per_slice_with_the_manifest_index():
    arr = np.zeros((2, 3, 2, 2), dtype=np.float32)     # batch 2 × 3 heads of 2 × 2
    arr[1, 2, 0, :] = np.nan
    arr[0, 1, 1, 1] = np.inf
    masked = np.full((2, 2), -np.inf, dtype=np.float32)
    notes = undefined_value_notes([_Item("attn_weights", arr), _Item("masked_scores", masked)])
    assert [(n["index"], n["value"], n["count"]) for n in notes] == [([0, 1], "inf", 1), ([1, 2], "nan", 2)]
    lines = summarize_notes(notes)
    assert lines == [f"multihead.attn_weights holds 1 inf, 2 nan (exported as such): "
                     f"{notes[0]['why']}; {notes[1]['why']}"]
    assert "overflow" in notes[0]["why"] and "0/0" in notes[1]["why"]


@pytest.mark.parametrize("name,values,numbers", [
    ("attn_weights", [0.5, 1.0], True), ("attn_weights", [0.5, float("nan")], False),
    ("attn_weights", [float("-inf"), 1.0], False), ("attn_weights", [float("inf"), 1.0], False),
    ("masked_scores", [float("-inf"), 1.0], True), ("masked_scores", [float("-inf"), float("inf")], False),
    ("masked_scores", [float("nan"), float("-inf")], False), ("attn_weights", [], True)])
def test_the_quick_scan_tells_numbers_from_the_rest(name, values, numbers):
    """The one-pass min/max check behind item_notes: a nan, an inf, or a −inf where −∞ is not
    the design each send the intermediate to the full count."""
    import torch
    from core.numerics import _all_numbers

    class Item:
        def __init__(self):
            self.name, self.tensor = name, torch.tensor(values, dtype=torch.float32).reshape(1, -1)
    assert _all_numbers(Item()) is numbers
