"""Headless export: CLI options, CSV layout, manifest, and a bit-for-bit float32 round trip."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import AttentionConfig, build_trace
from core.cli import run_export
from core.export import export_trace, read_csv_slice, slice_csv

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def load_manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_cli_export_book_example_round_trips_bit_for_bit(tmp_path):
    out = tmp_path / "book"
    res = run_cli("export", "--out", str(out), "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    manifest = load_manifest(out)
    trace = build_trace(AttentionConfig(device="cpu"))
    assert manifest["config"] == trace.config.to_dict()
    names = {(e["stage"], e["name"]) for e in manifest["tensors"]}
    assert names == {it.key for it in trace}
    for entry in manifest["tensors"]:
        item = trace[entry["stage"], entry["name"]]
        rows, cols, values = read_csv_slice(out / entry["file"])
        expected = item.numpy()[tuple(entry["index"])]
        assert entry["shape"] == list(expected.shape)
        # bit-for-bit: same float32 after the text round trip (−inf included)
        assert np.array_equal(values, np.atleast_2d(expected)), entry["file"]
        if expected.ndim == 2:
            assert tuple(rows) == item.labels[-2]
        assert tuple(cols) == item.labels[-1]


def test_csv_layout_has_token_labels_and_minus_inf(tmp_path):
    out = tmp_path / "x"
    assert run_export(["--out", str(out), "--device", "cpu"]) == 0
    text = (out / "causal" / "masked_scores.csv").read_text().splitlines()
    assert text[0] == "query\\key,Your,journey,starts,with,one,step"
    assert text[1].startswith("Your,") and text[1].endswith(",-inf")
    assert len(text) == 7


def test_batch_and_heads_enumerate_leading_indices(tmp_path):
    out = tmp_path / "b"
    assert run_export(["--out", str(out), "--batch", "2", "--heads", "2", "--d-out", "4",
                       "--qkv-bias", "--device", "cpu"]) == 0
    manifest = load_manifest(out)
    entries = {(e["stage"], e["name"], tuple(e["index"])): e for e in manifest["tensors"]}
    for b in range(2):
        for h in range(2):
            e = entries[("multihead", "attn_weights", (b, h))]
            assert e["shape"] == [6, 6] and e["file"] == f"multihead/attn_weights_b{b}_h{h}.csv"
        assert entries[("causal", "context_vecs", (b,))]["shape"] == [6, 4]
    assert ("simplified", "inputs", ()) in entries
    for role in ("query", "key", "value"):
        assert ("trainable", f"b_{role}", ()) in entries
        assert ("multihead", f"b_{role}", ()) in entries
    trace = build_trace(AttentionConfig(batch=2, d_out=4, qkv_bias=True, device="cpu"))
    _, _, vals = read_csv_slice(out / entries[("multihead", "attn_weights", (1, 0))]["file"])
    assert np.array_equal(vals, trace["multihead", "attn_weights"].numpy()[1, 0])
    _, _, bias = read_csv_slice(out / entries[("trainable", "b_query", ())]["file"])
    assert np.array_equal(bias[0], trace["trainable", "b_query"].numpy())


def test_float64_export_round_trips_exactly(tmp_path):
    cfg = AttentionConfig(embeddings="random", text="one two three four", d_in=4, dtype="float64", device="cpu")
    trace = build_trace(cfg)
    export_trace(trace, tmp_path / "f64")
    for entry in load_manifest(tmp_path / "f64")["tensors"]:
        _, _, vals = read_csv_slice(tmp_path / "f64" / entry["file"], dtype=np.float64)
        assert np.array_equal(vals, np.atleast_2d(trace[entry["stage"], entry["name"]].numpy()[tuple(entry["index"])]))


@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_numpy_formats(tmp_path, fmt):
    trace = build_trace(AttentionConfig(batch=2, device="cpu"))
    export_trace(trace, tmp_path / fmt, fmt=fmt)
    manifest = load_manifest(tmp_path / fmt)
    assert manifest["format"] == fmt
    if fmt == "npz":
        data = np.load(tmp_path / fmt / "trace.npz")
        for it in trace:
            assert np.array_equal(data[f"{it.stage}/{it.name}"], it.numpy())
    else:
        for e in manifest["tensors"]:
            assert np.array_equal(np.load(tmp_path / fmt / e["file"]), trace[e["stage"], e["name"]].numpy())


def test_own_text_and_csv_embeddings(tmp_path):
    out = tmp_path / "text"
    assert run_export(["--out", str(out), "--text", "Hello, world!", "--d-in", "4", "--device", "cpu"]) == 0
    m = load_manifest(out)
    assert m["tokens"] == ["Hello", ",", "world", "!"] and m["config"]["embeddings"] == "random"
    # the exported inputs.csv reads back as an embeddings CSV
    out2 = tmp_path / "csv"
    assert run_export(["--out", str(out2), "--embeddings", str(out / "simplified" / "inputs.csv"),
                       "--device", "cpu"]) == 0
    a = read_csv_slice(out / "simplified" / "inputs.csv")
    b = read_csv_slice(out2 / "simplified" / "inputs.csv")
    assert a[0] == b[0] and np.array_equal(a[2], b[2])
    assert load_manifest(out2)["config"]["d_in"] == 4


def test_slice_csv_quotes_labels_with_commas():
    text = slice_csv(np.array([[1.0, 2.0]], dtype=np.float32), [","], ["a,b", "c"], "query\\key")
    assert text.splitlines() == ['query\\key,"a,b",c', '",",1,2']


def test_help_documents_every_option():
    res = run_cli("export", "--help")
    assert res.returncode == 0
    for opt in ["--out", "--embeddings", "--text", "--d-in", "--d-out", "--heads", "--init", "--seed",
                "--causal", "--no-causal", "--dropout", "--dropout-seed", "--qkv-bias", "--batch",
                "--device", "--dtype", "--format"]:
        assert opt in res.stdout, opt
    top = run_cli("--help")
    assert top.returncode == 0 and "export" in top.stdout


def test_bad_option_exits_2_with_one_line(tmp_path):
    res = run_cli("export", "--out", str(tmp_path / "o"), "--d-out", "3", "--heads", "2")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "--heads" in res.stderr and "divisible" in res.stderr
    assert not (tmp_path / "o").exists()
