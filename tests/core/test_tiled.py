"""The tiled-attention (FlashAttention) stage: its result against F.scaled_dot_product_attention
for random sizes and block sizes, causal or not, FA1 and FA2; the running m, l and O at every tile
against an independent reference computed from the full score matrix; the skipped tiles; the
chapter's head; the inspector; the export round trip and bad options."""
import json
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from core import AttentionConfig, build_trace
from core.config import ConfigError
from core.stages import tiled as stage
from core.tiled import RESULT, build_tiled, step_stage
from core.tiled_config import TiledConfig
from tests.core.cli_runner import assert_refused, run_main

TOL32 = 1e-6     # float32: the same sums in another order (online softmax vs one softmax)
TOL64 = 1e-12


def sdpa(Q, K, V, causal):
    return F.scaled_dot_product_attention(Q[None, None], K[None, None], V[None, None], is_causal=causal)[0, 0]


def qkv(T, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(T, d, generator=g, dtype=dtype) for _ in range(3)]


# (T, d, Br, Bc): blocks that divide T, that do not, bigger than T, 1, the limit 64
SIZES = [(1, 4, 1, 1), (6, 2, 2, 3), (7, 8, 2, 3), (7, 8, 3, 2), (16, 16, 4, 4), (17, 8, 5, 16), (33, 16, 8, 7),
         (40, 4, 64, 64), (64, 32, 16, 64), (100, 8, 13, 9), (5, 3, 1, 4)]


@pytest.mark.parametrize("fa2", [False, True], ids=["fa1", "fa2"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("T, d, Br, Bc", SIZES)
def test_the_tiled_result_equals_scaled_dot_product_attention(T, d, Br, Bc, causal, fa2):
    for dtype, tol in ((torch.float32, TOL32), (torch.float64, TOL64)):
        Q, K, V = qkv(T, d, dtype, seed=T * 100 + Br * 10 + Bc)
        steps, result = stage.flash_attention(Q, K, V, Br, Bc, causal, fa2)
        want = sdpa(Q, K, V, causal)
        assert float((result["output"] - want).abs().max()) <= tol, dtype
        scores = (Q @ K.T) / math.sqrt(d)
        if causal:
            scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -torch.inf)
        assert float((result["lse"] - torch.logsumexp(scores, dim=-1)).abs().max()) <= tol * 10, dtype


def prefix_reference(Q, K, V, rows, k_stop, causal):
    """m, l and both forms of O for query rows ``rows`` over the keys 0 … k_stop − 1, straight
    from the full score matrix (no tiles, no running updates)."""
    T, d = Q.shape
    S = (Q @ K.T) / math.sqrt(d)
    if causal:
        S = S.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -torch.inf)
    S = S[rows[0]:rows[1], :k_stop]
    if k_stop == 0:
        n = rows[1] - rows[0]
        return torch.full((n,), -torch.inf, dtype=Q.dtype), torch.zeros(n, dtype=Q.dtype), torch.zeros(n, d, dtype=Q.dtype)
    m = S.max(dim=-1).values
    e = torch.exp(S - m[:, None])
    return m, e.sum(-1), e @ V[:k_stop]


@pytest.mark.parametrize("fa2", [False, True], ids=["fa1", "fa2"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("T, Br, Bc", [(7, 2, 3), (9, 4, 2), (12, 3, 3), (5, 1, 5)])
def test_running_m_l_and_o_at_every_tile_equal_the_prefix_of_the_full_matrix(T, Br, Bc, causal, fa2):
    Q, K, V = qkv(T, 4, torch.float64, seed=T + Br)
    steps, _ = stage.flash_attention(Q, K, V, Br, Bc, causal, fa2)
    assert steps
    for step in steps:
        _, i, j, q0, q1, k0, k1, _ = (int(v) for v in step["tile"].tolist())
        rows = (q0, q1 + 1)
        m_old, l_old, acc_old = prefix_reference(Q, K, V, rows, k0, causal)
        m_new, l_new, acc_new = prefix_reference(Q, K, V, rows, k1 + 1, causal)
        assert torch.allclose(step["m_before"], m_old, rtol=0, atol=1e-12)   # −∞ before a row's first tile
        assert torch.allclose(step["m_after"], m_new, rtol=0, atol=1e-12)
        assert torch.allclose(step["l_before"], l_old, rtol=0, atol=1e-12)
        assert torch.allclose(step["l_after"], l_new, rtol=0, atol=1e-12)
        assert torch.allclose(step["rescale"], torch.exp(m_old - m_new), rtol=0, atol=1e-12)
        if fa2:      # the unscaled accumulator
            want_old, want_new = acc_old, acc_new
        else:        # FlashAttention keeps O normalised (0 before the first tile)
            want_old = torch.where(l_old[:, None] > 0, acc_old / l_old.clamp_min(1e-300)[:, None], acc_old)
            want_new = acc_new / l_new[:, None]
        assert torch.allclose(step["O_before"], want_old, rtol=0, atol=1e-12)
        assert torch.allclose(step["O_after"], want_new, rtol=0, atol=1e-12)


@pytest.mark.parametrize("T, Br, Bc", [(7, 2, 3), (10, 3, 1), (6, 6, 6), (9, 1, 4), (13, 5, 2)])
def test_skipped_tiles_are_exactly_those_wholly_above_the_diagonal(T, Br, Bc):
    Q, K, V = qkv(T, 2, torch.float32, seed=T)
    above = torch.ones(T, T, dtype=torch.bool).triu(1)                    # key after query
    for fa2 in (False, True):
        _, causal = stage.flash_attention(Q, K, V, Br, Bc, True, fa2)
        _, full = stage.flash_attention(Q, K, V, Br, Bc, False, fa2)
        assert full["tiles"][:, 6].tolist() == [1.0] * len(full["tiles"])
        for row in causal["tiles"].tolist():
            i, j, q0, q1, k0, k1, visited, diagonal, step = (int(v) for v in row)
            block = above[q0:q1 + 1, k0:k1 + 1]
            assert (q0, q1) == (i * Br, min(T, (i + 1) * Br) - 1) and (k0, k1) == (j * Bc, min(T, (j + 1) * Bc) - 1)
            assert visited == (0 if bool(block.all()) else 1), row
            assert diagonal == (1 if bool(block.any()) and not bool(block.all()) else 0), row
            assert (step == -1) == (visited == 0)
        n = math.ceil(T / Br) * math.ceil(T / Bc)
        assert len(causal["tiles"]) == n


def test_the_kernel_order_fa1_key_blocks_outer_fa2_query_blocks_outer():
    Q, K, V = qkv(5, 2, torch.float32, seed=1)
    _, fa1 = stage.flash_attention(Q, K, V, 2, 2, False, False)
    _, fa2 = stage.flash_attention(Q, K, V, 2, 2, False, True)
    assert [tuple(int(v) for v in r[:2]) for r in fa1["tiles"].tolist()] == [(i, j) for j in range(3) for i in range(3)]
    assert [tuple(int(v) for v in r[:2]) for r in fa2["tiles"].tolist()] == [(i, j) for i in range(3) for j in range(3)]


def test_a_row_the_diagonal_tile_hides_entirely_gives_no_nan():
    """Br = 4, Bc = 1: key 3 is after queries 0, 1, 2 of block 0, so their row of that tile is all −∞."""
    Q, K, V = qkv(4, 3, torch.float64, seed=2)
    for fa2 in (False, True):
        steps, result = stage.flash_attention(Q, K, V, 4, 1, True, fa2)
        last = steps[-1]
        assert last["m_tile"][:3].isinf().all() and torch.equal(last["probs"][:3], torch.zeros(3, 1, dtype=torch.float64))
        assert not any(t.isnan().any() for s in steps for t in s.values())
        assert float((result["output"] - sdpa(Q, K, V, True)).abs().max()) <= TOL64


@pytest.mark.parametrize("fa2", [False, True], ids=["fa1", "fa2"])
def test_the_trace_runs_on_the_multihead_stages_head(fa2):
    cfg = TiledConfig(d_out=8, num_heads=2, head=1, block_rows=4, block_cols=3, fa2=fa2, device="cpu")
    trace = build_tiled(cfg)
    chapter = build_trace(AttentionConfig(d_out=8, num_heads=2, device="cpu"))
    for name in ("queries", "keys", "values"):
        assert torch.equal(trace["tiled_inputs", name].tensor, chapter["multihead", name].tensor.reshape(-1, 2, 6, 4)[0, 1])
    want = chapter["multihead", "context_heads"].tensor.reshape(-1, 2, 6, 4)[0, 1]
    assert float((trace[RESULT, "output"].tensor - want).abs().max()) <= TOL32
    assert float(trace[RESULT, "check"].tensor) <= TOL32
    assert trace[RESULT, "output"].labels[0] == trace.labels
    assert len(trace.steps) == int(trace[RESULT, "tiles"].tensor[:, 6].sum())


def test_float64_trace_and_the_hbm_row_of_this_size():
    from core.flash_io import flash_io, standard_io

    trace = build_tiled(TiledConfig(embeddings="random", text=" ".join(f"w{i}" for i in range(23)), d_in=5,
                                    block_rows=5, block_cols=7, causal=False, dtype="float64", device="cpu"))
    assert float(trace[RESULT, "check"].tensor) <= TOL64
    io = trace[RESULT, "io"].tensor
    assert io[0].tolist()[:3] == [standard_io(23, 8).reads, standard_io(23, 8).writes, standard_io(23, 8).total]
    assert io[1].tolist()[:3] == [flash_io(23, 8, 5, 7).reads, flash_io(23, 8, 5, 7).writes, flash_io(23, 8, 5, 7).total]
    assert io[1, 3] == flash_io(23, 8, 5, 7).total * 8


@pytest.mark.parametrize("fa2", [False, True], ids=["fa1", "fa2"])
def test_every_term_has_a_code_line_and_the_inspector_rebuilds_the_cells(fa2):
    from core.provenance import Cell

    cfg = TiledConfig(block_rows=4, block_cols=3, fa2=fa2, device="cpu")
    trace = build_tiled(cfg)
    tagged = {n for n, _ in stage.code(cfg) if n is not None}
    computed = {n for s in trace.stages.values() for n in s}
    assert computed <= tagged and tagged <= computed
    explained = 0
    for stage_name in (step_stage(1, len(trace.steps)), step_stage(len(trace.steps) - 1, len(trace.steps)), RESULT):
        for name, item in trace.stages[stage_name].items():
            arr = item.numpy()
            for index in {(0,) * arr.ndim, tuple(n - 1 for n in arr.shape)}:
                e = stage.explain(Cell(trace, stage_name, name, index))
                if e is not None and e.kind != "given" and e.kind != "check":
                    explained += 1
                    assert e.recomputed == pytest.approx(e.value, abs=1e-5) or e.value == e.recomputed, (stage_name, name, index)
    assert explained >= 20


@pytest.mark.parametrize("changes, field", [
    ({"block_rows": 0}, "block_rows"), ({"block_cols": 65}, "block_cols"), ({"block_rows": True}, "block_rows"),
    ({"head": 2}, "head"), ({"head": -1}, "head"), ({"causal": "yes"}, "causal"),
    ({"embeddings": "random", "text": " ".join(["w"] * 200), "block_rows": 1, "block_cols": 1}, "block_rows"),
    ({"d_out": 6, "num_heads": 4}, "num_heads"),
])
def test_bad_sizes_name_their_field(changes, field):
    with pytest.raises(ConfigError) as err:
        TiledConfig(device="cpu", **changes)
    assert err.value.field == field


# ---- the export --------------------------------------------------------------------------------

def test_export_round_trip_manifest_and_csv(tmp_path):
    from core.cli import run_export
    from core.export import read_csv_slice

    out = tmp_path / "out"
    assert run_export(["--stage", "tiled", "--block-rows", "4", "--block-cols", "3", "--fa2", "--head", "1",
                       "--out", str(out), "--device", "cpu"]) == 0
    trace = build_tiled(TiledConfig(block_rows=4, block_cols=3, fa2=True, head=1, device="cpu"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["fa2"] is True and manifest["config"]["block_rows"] == 4
    stages = list(dict.fromkeys(t["stage"] for t in manifest["tensors"]))
    assert stages == ["tiled_inputs"] + [step_stage(n, 4) for n in range(4)] + ["tiled_result"]
    for entry in manifest["tensors"]:                                    # every slice reads back exactly
        item = trace[entry["stage"], entry["name"]]
        rows, cols, values = read_csv_slice(out / entry["file"], dtype=item.numpy().dtype)
        want = item.numpy()[tuple(entry["index"])]
        assert values.size == want.size and (values.reshape(want.shape) == want).all(), entry["file"]
        assert cols == list(item.labels[-1])
    rows, cols, _ = read_csv_slice(out / "tiled_step003" / "scores.csv")
    assert rows == ["one", "step"] and cols == ["with", "one", "step"]      # FA2: the 4th tile is (query block 1, key block 1)
    rows, cols, _ = read_csv_slice(out / "tiled_result" / "tiles.csv")
    assert cols == list(stage.TABLE_FIELDS) and rows[:2] == ["q0·k0", "q0·k1"]


run_cli = partial(run_main, "export")


@pytest.mark.parametrize("args, says", [
    (["--block-rows", "0"], "--block-rows: must be between 1 and 64"),
    (["--block-cols", "65"], "--block-cols: must be between 1 and 64"),
    (["--block-rows", "x"], "'x' is not a whole number"),
    (["--head", "2"], "--head: must be between 0 and 1"),
    (["--text", " ".join(["w"] * 100), "--block-rows", "1", "--block-cols", "3"],
     "--block-rows: 100 tokens in blocks of 1 × 3 make 3400 tiles; the limit is 1024"),
    (["--base", "5"], "unrecognized arguments: --base 5"),
    (["--d-out", "6", "--heads", "4"], "--heads:"),
])
def test_bad_export_options_exit_2_with_one_line_and_write_nothing(tmp_path, args, says):
    assert_refused(run_cli("--stage", "tiled", "--out", str(tmp_path / "out"), "--device", "cpu", *args), says)
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
def test_cuda_gives_the_cpu_numbers():
    for fa2 in (False, True):
        cpu = build_tiled(TiledConfig(block_rows=4, block_cols=3, fa2=fa2, device="cpu"))
        gpu = build_tiled(TiledConfig(block_rows=4, block_cols=3, fa2=fa2, device="cuda"))
        assert gpu.device == "cuda" and gpu[RESULT, "output"].tensor.is_cuda
        assert float((gpu[RESULT, "output"].tensor.cpu() - cpu[RESULT, "output"].tensor).abs().max()) <= TOL32
        assert float(gpu[RESULT, "check"].tensor) <= TOL32
        assert torch.equal(gpu[RESULT, "tiles"].tensor.cpu(), cpu[RESULT, "tiles"].tensor)
