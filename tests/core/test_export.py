"""core.export: CSV layout and formatting, the manifest (from the stage table), the CLI, bit-for-bit round trips.

(Atomic writing, cancelling and failures: test_export_safety.py.)
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import AttentionConfig, build_trace
from core.cli import run_export
from core.export import export_trace, format_value, read_csv_slice, slice_csv
from core.stages import STAGES

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


# ---- cell formatting ------------------------------------------------------------------------------

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


# ---- the manifest: complete, regular, from the stage table ------------------------------------------

FULL = AttentionConfig(embeddings="random", text="a b c d", d_in=3, d_out=4, num_heads=2, qkv_bias=True,
                       batch=2, dropout=0.5)


def test_manifest_lists_every_term_of_the_stage_table_in_its_order(tmp_path):
    trace = build_trace(FULL)
    export_trace(trace, tmp_path / "out")
    tensors = load_manifest(tmp_path / "out")["tensors"]
    names = list(dict.fromkeys((t["stage"], t["name"]) for t in tensors))
    assert names == [(s.name, n) for s in STAGES.values() if not s.external for n in s.terms]   # every term, table order
    for t in tensors:
        item = trace[t["stage"], t["name"]]
        assert t["full_shape"] == list(item.shape) and t["axes"] == list(item.axes)
        assert t["shape"] == list(item.shape[len(t["index"]):])                   # the slice after its index
        assert (tmp_path / "out" / t["file"]).is_file()


def test_per_head_weights_biases_and_the_wrappers_weights_are_split_by_head(tmp_path):
    trace = build_trace(FULL)
    export_trace(trace, tmp_path / "out")
    rows = {(t["stage"], t["name"], tuple(t["index"])): t for t in load_manifest(tmp_path / "out")["tensors"]}
    for role in ("query", "key", "value"):
        for h in range(2):
            w = rows["multihead", f"wrapper_W_{role}", (h,)]
            b = rows["multihead", f"wrapper_b_{role}", (h,)]
            assert (w["file"], w["shape"]) == (f"multihead/wrapper_W_{role}_h{h}.csv", [3, 2])
            assert (b["file"], b["shape"], b["full_shape"]) == (f"multihead/wrapper_b_{role}_h{h}.csv", [2], [2, 2])
            labels, cols, values = read_csv_slice(tmp_path / "out" / b["file"])
            assert labels == [f"wrapper_b_{role}"] and cols == ["d0", "d1"]
            assert np.array_equal(values[0], trace["multihead", f"wrapper_b_{role}"].numpy()[h])
    for bi in range(2):
        for h in range(2):
            t = rows["multihead", "wrapper_attn_weights", (bi, h)]
            assert t["file"] == f"multihead/wrapper_attn_weights_b{bi}_h{h}.csv" and t["shape"] == [4, 4]


def test_the_causal_stage_exports_its_own_projections(tmp_path):
    trace = build_trace(FULL)
    export_trace(trace, tmp_path / "out")
    out = tmp_path / "out"
    for name in ("W_query", "W_key", "W_value", "b_query", "b_key", "b_value"):
        _r, _c, values = read_csv_slice(out / f"causal/{name}.csv")
        assert np.array_equal(values.reshape(trace["causal", name].shape), trace["trainable", name].numpy())
    for name in ("queries", "keys", "values"):
        for bi in range(2):
            labels, _c, values = read_csv_slice(out / f"causal/{name}_b{bi}.csv")
            assert labels == ["a", "b", "c", "d"]
            assert np.array_equal(values, trace["trainable", name].numpy())   # the batch holds copies of X


def test_file_names_of_earlier_exports_are_kept(tmp_path):
    """Names whose meaning did not change keep their files (scripts read them)."""
    export_trace(build_trace(FULL), tmp_path / "out")
    files = {t["file"] for t in load_manifest(tmp_path / "out")["tensors"]}
    assert {"simplified/inputs.csv", "simplified/attn_scores.csv", "trainable/W_query.csv", "trainable/b_query.csv",
            "trainable/context_vecs.csv", "causal/mask.csv", "causal/attn_weights_b1.csv",
            "causal/renormalized_weights_b0.csv", "causal/dropout_mask_b1.csv", "multihead/wrapper_W_query_h1.csv",
            "multihead/wrapper_context_vecs_b0.csv", "multihead/queries_b1_h0.csv", "multihead/attn_weights_b0_h1.csv",
            "multihead/context_concat_b1.csv", "multihead/W_out.csv", "multihead/b_out.csv",
            "multihead/context_vecs_b0.csv"} <= files


# ---- issue 19: a folder holding the user's own manifest.json ------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "npy", "npz"])
def test_export_into_a_folder_with_the_users_own_manifest_exits_2_and_deletes_nothing(fmt, tmp_path, capsys):
    """Cause 1: the user's manifest.json listing data.csv and figure.npy had the export delete them.
    Now: exit 2, one line naming the folder, and every file byte-identical."""
    from tests.core.snapshots import hashes, users_files
    folder = tmp_path / "out"
    users_files(folder)
    before = hashes(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_export(["--out", str(folder), "--format", fmt, "--device", "cpu"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python main.py export: error: --out: ")
    assert "holds a manifest.json that this app did not write; nothing was changed" in err
    assert hashes(tmp_path) == before
