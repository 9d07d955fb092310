"""Copy snippet for stages 6–8 (core.stage_snippets): every matrix's script, run with python,
prints the trace's numbers, and imports nothing but torch and math.

Tolerance: 1e-5 absolute in float32 (the scripts recompute with the same torch operations; the
printed numbers carry 8 decimals), 1e-7 in float64 (the 8 printed decimals are the limit).
The scripts of one trace run in one python process (each exec'd in a fresh namespace, the
default dtype reset between them); one test runs scripts as standalone processes, as a
learner pasting them does.
"""
import ast
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from core.decode import build_decode
from core.decode_config import DecodeConfig
from core.rope import build_rope
from core.snippets import snippet
from core.stage_snippets import NoSnippet
from core.tiled import build_tiled
from core.tiled_config import RopeConfig, TiledConfig

ATOL = {"float32": 1e-5, "float64": 1e-7}

DECODE = {
    "mha": DecodeConfig(variant="mha", device="cpu"),
    "gqa-8x2-bias": DecodeConfig(variant="gqa", num_heads=8, num_kv_groups=2, d_out=16, qkv_bias=True, device="cpu"),
    "mqa": DecodeConfig(variant="mqa", device="cpu"),
    "mla-bias": DecodeConfig(variant="mla", latent_dim=3, qkv_bias=True, seed=7, device="cpu"),
    # the window (3) wraps the ring several times before the last of 8 new tokens
    "swa-late": DecodeConfig(variant="swa", sliding_window_size=3, num_kv_groups=2, new_tokens=8, device="cpu"),
    # new words, one of them in the prompt (its row again), the others drawn as the app draws them
    "mha-next-text-random-f64": DecodeConfig(variant="mha", embeddings="random", text="the cat sat on the mat",
                                             next_text="cat ran far", new_tokens=3, d_in=4, seed=11,
                                             dtype="float64", device="cpu"),
}
TILED = {
    "fa1": TiledConfig(device="cpu"),
    # Br = 4 and Bc = 4 do not divide T = 6: the last blocks are shorter
    "fa2-ragged": TiledConfig(fa2=True, block_rows=4, block_cols=4, head=1, device="cpu"),
    "fa1-ragged-noncausal-bias": TiledConfig(block_rows=4, block_cols=3, causal=False, qkv_bias=True, device="cpu"),
    "fa2-random-text": TiledConfig(fa2=True, embeddings="random", text="a b c d e f g", d_in=5, block_rows=3,
                                   block_cols=2, seed=3, device="cpu"),
}
ROPE = {
    "split": RopeConfig(device="cpu"),
    "interleaved": RopeConfig(form="interleaved", head=1, device="cpu"),
    # a far position: every token moved by 10⁶; a base the code panel rounds (%g)
    "far-odd-base": RopeConfig(shift=1_000_000, base=12345.678, device="cpu"),
    "interleaved-random-bias-f64": RopeConfig(form="interleaved", embeddings="random", text="one two three four",
                                              d_in=4, d_out=8, qkv_bias=True, dtype="float64", device="cpu"),
}

CHILD = r"""
import contextlib, io, json, sys, torch
out = []
for code in json.load(sys.stdin):
    buf = io.StringIO()
    torch.set_default_dtype(torch.float32)
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})
    out.append(buf.getvalue())
print(json.dumps(out))
"""


def numbers(printed: str) -> np.ndarray:
    """Every number printed (tensors and plain ints), the dtype notes left out."""
    body = re.sub(r"dtype=torch\.\w+", "", printed)
    return np.array([float(n) for n in re.findall(r"-?inf|nan|-?\d+\.\d*(?:e[-+]?\d+)?|-?\d+", body)])


def imported_modules(code: str) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add(node.module)
    return mods


def run_scripts(codes: list[str]) -> list[str]:
    res = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(codes), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def check_all(trace, keys, dtype: str) -> int:
    """Run the snippet of each (stage, name) and compare its printed numbers with the trace's."""
    codes = [snippet(trace, s, n) for s, n in keys]
    for code in codes:
        assert imported_modules(code) <= {"torch", "math"}, imported_modules(code)
        assert "core" not in code.split("\n# ")[0]
    outs = run_scripts(codes)
    for (stage, name), out in zip(keys, outs):
        got = numbers(out)
        expected = trace[stage, name].tensor.detach().cpu().double().numpy().ravel()
        assert got.shape == expected.shape, (stage, name, out)
        fin = np.isfinite(expected)
        assert np.array_equal(np.isfinite(got), fin), (stage, name)
        assert np.max(np.abs(got[fin] - expected[fin]), initial=0) <= ATOL[dtype], (stage, name, out)
    return len(keys)


@pytest.mark.parametrize("key", list(DECODE))
def test_decode_snippets_print_the_trace(key):
    cfg = DECODE[key]
    trace = build_decode(cfg)
    pos = trace.positions
    steps = {pos[0], pos[len(pos) // 2], pos[-1]}          # the first, a middle and the last (late) position
    stages = ["decode_weights", "decode_prefill", "decode_summary"] + \
        [s for s in trace.stages if s.startswith("decode_pos") and int(s.removeprefix("decode_pos")) in steps]
    keys = [(s, n) for s in stages for n in trace.stages[s]]
    assert check_all(trace, keys, cfg.dtype) > 50


@pytest.mark.parametrize("key", list(TILED))
def test_tiled_snippets_print_the_trace(key):
    cfg = TILED[key]
    trace = build_tiled(cfg)
    names = [s for s in trace.stages if s.startswith("tiled_step")]
    picked = {names[0], names[len(names) // 2], names[-1]}  # the first tile, one mid-way, the last
    keys = [(s, n) for s in ["tiled_inputs", "tiled_result", *sorted(picked)] for n in trace.stages[s]
            if (s, n) not in (("tiled_result", "tiles"), ("tiled_result", "io"))]
    assert check_all(trace, keys, cfg.dtype) > 30


def test_a_mid_row_tile_is_the_one_printed():
    """FA1 walks key blocks outermost: a tile of the second key block is not the second step; the
    script prints the tile the trace's step names (its O_before holds what earlier tiles left)."""
    cfg = TiledConfig(block_rows=2, block_cols=2, device="cpu")
    trace = build_tiled(cfg)
    names = [s for s in trace.stages if s.startswith("tiled_step")]
    mid = next(s for s in names if trace[s, "tile"].tensor[2] == 1 and trace[s, "tile"].tensor[1] == 2)
    assert trace[mid, "O_before"].tensor.abs().sum() > 0            # query block 2 has been visited before
    code = snippet(trace, mid, "O_before")
    assert f"if step == {int(trace[mid, 'tile'].tensor[0])}:" in code
    check_all(trace, [(mid, n) for n in ("O_before", "O_after", "tile", "scores")], "float32")


@pytest.mark.parametrize("key", list(ROPE))
def test_rope_snippets_print_the_trace(key):
    cfg = ROPE[key]
    trace = build_rope(cfg)
    keys = [("rope", n) for n in trace.stages["rope"]]
    assert check_all(trace, keys, cfg.dtype) == len(trace.stages["rope"])


def printed_objects(code: str) -> list:
    """Run ``code`` here with ``print`` recording what it is given (the RNG and default dtype restored)."""
    import torch
    got = []

    def record(x):           # a copy: the kernel's m_old is a view that the write-back then changes
        got.append(x.clone() if isinstance(x, torch.Tensor) else x)
    with torch.random.fork_rng(devices=[]):
        try:
            exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__", "print": record})
        finally:
            torch.set_default_dtype(torch.float32)
    return got


EXACT = [("decode", "swa-late"), ("decode", "mla-bias"), ("decode", "gqa-8x2-bias"),
         ("tiled", "fa2-ragged"), ("tiled", "fa1-ragged-noncausal-bias"), ("rope", "far-odd-base"),
         ("rope", "interleaved-random-bias-f64")]


@pytest.mark.parametrize("stage,key", EXACT, ids=[f"{s}-{k}" for s, k in EXACT])
def test_the_scripts_compute_exactly_the_trace(stage, key):
    """Beyond the printed digits: the scripts run the app's torch operations in the app's order
    (the weights drawn the same way, cos and sin cast as the app casts them), so the tensor each
    prints equals the trace's exactly (torch.equal; a term the app records in another dtype, RoPE's
    θ and angles, cast to it first)."""
    import torch
    if stage == "decode":
        trace = build_decode(DECODE[key])
        last = f"decode_pos{trace.positions[-1]}"
        keys = [(s, n) for s in ("decode_prefill", last, "decode_summary") for n in trace.stages[s]]
    elif stage == "tiled":
        trace = build_tiled(TILED[key])
        last = [s for s in trace.stages if s.startswith("tiled_step")][-1]
        keys = [(s, n) for s in ("tiled_inputs", last, "tiled_result") for n in trace.stages[s]
                if n not in ("tiles", "io")]
    else:
        trace = build_rope(ROPE[key])
        keys = [("rope", n) for n in trace.stages["rope"]]
    for s, n in keys:
        (got,) = printed_objects(snippet(trace, s, n))
        want = trace[s, n].tensor
        got = torch.as_tensor(got).to(want.dtype).reshape(want.shape)
        assert torch.equal(got, want), (s, n, (got - want).abs().max())


def test_the_window_views_give_the_same_script():
    """The window reads stages 6–8 through views at the bar's pointer (stage ``decode``,
    ``tiled_step``): the script is the one of the step the pointer is at."""
    from gui.external_model import DecodeView, TiledView
    trace = build_decode(DECODE["swa-late"])
    p = trace.positions[4]
    view = DecodeView(trace, p)
    assert snippet(view, "decode", "ring_k") == snippet(trace, f"decode_pos{p}", "ring_k").replace(
        f"decode_pos{p}.ring_k", "decode.ring_k")
    tiled = build_tiled(TILED["fa1"])
    tv = TiledView(tiled, 3)
    assert snippet(tv, "tiled_step", "probs") == snippet(tiled, tv.step_stage, "probs").replace(
        f"{tv.step_stage}.probs", "tiled_step.probs")


def test_standalone_scripts_run_as_pasted():
    """A few scripts run as a learner runs them: python -c, nothing of this project importable."""
    cases = [(build_decode(DECODE["gqa-8x2-bias"]), "decode_pos7", "attn_weights"),
             (build_tiled(TILED["fa2-ragged"]), "tiled_result", "output"),
             (build_rope(ROPE["far-odd-base"]), "rope", "scores_shifted")]
    for trace, stage, name in cases:
        code = snippet(trace, stage, name)
        res = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120,
                             cwd="/")
        assert res.returncode == 0, res.stderr
        expected = trace[stage, name].tensor.double().numpy().ravel()
        assert np.max(np.abs(numbers(res.stdout) - expected)) <= 1e-5


def test_matrices_without_a_script_say_so():
    tiled = build_tiled(TILED["fa1"])
    for name in ("tiles", "io"):
        with pytest.raises(NoSnippet, match=f"tiled_result.{name}"):
            snippet(tiled, "tiled_result", name)
    trace = build_decode(DECODE["mha"])
    with pytest.raises(KeyError, match="not in this decode trace"):
        snippet(trace, "decode_pos6", "ring_k")            # mha keeps no ring


def test_the_script_reads_like_the_code_panel():
    """The step's lines are the code panel's (core.stages.decode.code), the pointer written in."""
    from core.stages.decode import code
    cfg = DECODE["mha"]
    trace = build_decode(cfg)
    script = snippet(trace, "decode_pos7", "context_vecs")
    assert "ptr = 7  # the new token's position" in script
    panel = [line for n, line in code(cfg) if n in ("queries", "cache_k", "attn_scores", "context_vecs")]
    for line in panel:
        assert line in script
    assert "torch.manual_seed(123)" in script and "nn.Linear(d_in, d_out, bias=False)" in script


def test_the_rope_base_is_written_in_full():
    """The base keeps every digit (12345.678, not %g's 12345.7): the code panel writes it in full."""
    trace = build_rope(ROPE["far-odd-base"])
    script = snippet(trace, "rope", "angles")
    assert "1.0 / 12345.678 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)" in script
