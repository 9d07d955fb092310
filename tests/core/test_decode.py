"""The decode stage against the book's ch04 bonus classes (tests/core/decode_references.py, the
same weights copied in): cached and uncached outputs per variant over a sweep of sizes; cached ==
uncached at every position; the special cases (GQA = MHA, GQA = MQA, SWA with a wide window =
causal attention); the ring buffer and pointer; the export round trip and bad options."""
import json
from functools import partial

import pytest
import torch

from core import AttentionConfig, build_trace
from core.config import ConfigError
from core.decode import SUMMARY, build_decode, draw_weights, step_stage
from core.decode_config import DecodeConfig
from core.stages import decode as stage
from tests.core import decode_references as ref
from tests.core.cli_runner import assert_refused, run_main

TOL = 1e-5          # float32, the bar: the same math in another order (nn.Linear's addmm, batch axis)


def max_diff(a, b) -> float:
    return float((a - b).abs().max())


def reference_module(cfg: DecodeConfig, trace, context_length: int):
    """The book's class for the variant, holding the trace's weights."""
    named = {n: it.tensor for n, it in trace.stages["decode_weights"].items()}
    d_in, d_out, h = cfg.d_in, cfg.d_out, cfg.num_heads
    if cfg.variant == "mha":
        module = ref.MultiHeadAttention(d_in, d_out, context_length, 0.0, h, qkv_bias=cfg.qkv_bias)
    elif cfg.variant in ("gqa", "mqa"):
        module = ref.GroupedQueryAttention(d_in, d_out, 0.0, h, cfg.kv_groups, qkv_bias=cfg.qkv_bias)
    elif cfg.variant == "mla":
        module = ref.MultiHeadLatentAttention(d_in, d_out, 0.0, h, qkv_bias=cfg.qkv_bias, latent_dim=cfg.latent)
    else:
        assert cfg.kv_groups == h                     # the book's SWA class is multi-head
        module = ref.MultiHeadAttentionWithSWA(d_in, d_out, 0.0, h, qkv_bias=cfg.qkv_bias,
                                               sliding_window_size=cfg.window)
    return ref.load(module, named)


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


# (variant, prompt tokens, new tokens, d_in, d_out, heads, extra options, qkv_bias)
SWEEP = [
    ("mha", 6, 4, 3, 8, 4, {}, False),
    ("mha", 1, 5, 5, 6, 3, {}, True),
    ("mha", 17, 3, 16, 16, 8, {}, False),
    ("gqa", 6, 4, 3, 16, 8, {"num_kv_groups": 2}, False),
    ("gqa", 9, 6, 7, 12, 6, {"num_kv_groups": 3}, True),
    ("gqa", 2, 3, 4, 8, 4, {"num_kv_groups": 4}, False),
    ("mqa", 5, 5, 6, 12, 4, {}, False),
    ("mqa", 1, 2, 2, 2, 2, {}, True),
    ("mla", 6, 4, 3, 8, 4, {"latent_dim": 4}, False),
    ("mla", 11, 5, 8, 16, 4, {"latent_dim": 16}, True),
    ("mla", 3, 3, 4, 6, 2, {"latent_dim": 1}, False),
    ("swa", 6, 5, 3, 8, 4, {"sliding_window_size": 3}, False),
    ("swa", 2, 7, 5, 6, 2, {"sliding_window_size": 4}, True),     # the ring wraps during decoding
    ("swa", 10, 4, 4, 8, 2, {"sliding_window_size": 1}, False),   # each token sees only itself
    ("swa", 9, 3, 4, 8, 4, {"sliding_window_size": 5}, False),    # the prompt is longer than the window
]
SWEEP_IDS = [f"{v}-T{t}+{n}-din{di}-dout{do}-h{h}-{'-'.join(f'{k}{x}' for k, x in o.items())}{'-bias' if b else ''}"
             for v, t, n, di, do, h, o, b in SWEEP]


def sweep_config(case, dtype="float32", seed=11) -> DecodeConfig:
    variant, prompt, new, d_in, d_out, heads, options, bias = case
    return DecodeConfig(variant=variant, embeddings="random", text=words(prompt), d_in=d_in, d_out=d_out,
                        num_heads=heads, new_tokens=new, seed=seed, qkv_bias=bias, device="cpu", dtype=dtype,
                        **options)


@pytest.mark.parametrize("case", SWEEP, ids=SWEEP_IDS)
def test_the_variant_equals_the_books_class_with_and_without_the_cache(case):
    cfg = sweep_config(case)
    trace = build_decode(cfg)
    T = len(trace.tokens)
    x = trace[SUMMARY, "inputs"].tensor.unsqueeze(0)                       # (1, T, d_in)
    module = reference_module(cfg, trace, T)
    cached = ref.generate(module, x, trace.prompt_tokens)[0]              # the book's generate loop
    with torch.no_grad():
        module.reset_cache()
        uncached = module(x, use_cache=False)[0]
    assert max_diff(trace[SUMMARY, "context_vecs"].tensor, cached) <= TOL
    assert max_diff(trace[SUMMARY, "recomputed"].tensor, uncached) <= TOL
    # and step by step: each new token's output, and its recompute over the sequence so far only
    for p in trace.positions:
        assert max_diff(trace.step(p)["context_vecs"].tensor[0], cached[p]) <= TOL
        with torch.no_grad():
            so_far = module(x[:, :p + 1], use_cache=False)[0, -1]
        assert max_diff(trace.step(p)["recomputed"].tensor[0], so_far) <= TOL
    assert module.ptr_current_pos == 0 or module.ptr_current_pos == T


@pytest.mark.parametrize("case", SWEEP, ids=SWEEP_IDS)
def test_cached_equals_uncached_at_every_position(case):
    trace = build_decode(sweep_config(case))
    for p in trace.positions:
        step = trace.step(p)
        assert int(step["position"].tensor) == p                           # the pointer: the new token's index
        assert float(step["check"].tensor) <= TOL
        assert float(step["check"].tensor) == max_diff(step["context_vecs"].tensor, step["recomputed"].tensor)
    assert float(trace[SUMMARY, "max_abs_diff"].tensor.max()) <= TOL


@pytest.mark.parametrize("case", SWEEP[:: 3], ids=SWEEP_IDS[:: 3])
def test_float64_agrees_to_1e_12(case):
    trace = build_decode(sweep_config(case, "float64"))
    assert float(trace[SUMMARY, "max_abs_diff"].tensor.max()) <= 1e-12


def test_the_check_catches_a_wrong_pointer():
    """A cache whose pointer is one short masks the new token's own key away (the book's bug class)."""
    cfg = DecodeConfig(variant="swa", sliding_window_size=2, device="cpu")
    trace = build_decode(cfg)
    w = draw_weights(cfg)
    x = trace[SUMMARY, "inputs"].tensor
    _, cache = stage.forward("swa", x[:6], w, stage.empty_cache(4, 2, None, 2), 4, 4, 2)
    bad = stage.Cache(cache.k, cache.v, None, cache.positions, cache.ptr_current_pos - 1)
    named, _ = stage.forward("swa", x[6:7], w, bad, 4, 4, 2)
    assert max_diff(named["context_vecs"][0], trace[SUMMARY, "recomputed"].tensor[6]) > 1e-3


@pytest.mark.parametrize("variant, options", [("mha", {}), ("gqa", {"num_kv_groups": 2}), ("mla", {"latent_dim": 3}),
                                              ("swa", {"sliding_window_size": 3})])
def test_a_prompt_prefilled_in_two_chunks_equals_one_prefill(variant, options):
    """The mask and the pointer of a multi-token call on a non-empty cache (where the book's early
    mask, sliced [:num_tokens, :num_tokens], went wrong)."""
    cfg = DecodeConfig(variant=variant, embeddings="random", text=words(9), d_in=4, device="cpu", **options)
    w = draw_weights(cfg)
    x = build_decode(cfg)[SUMMARY, "inputs"].tensor
    args = (cfg.num_heads, cfg.kv_groups, cfg.window)
    empty = stage.empty_cache(cfg.kv_groups, cfg.head_dim, cfg.latent, cfg.window)
    whole, _ = stage.forward(variant, x[:9], w, empty, *args)
    first, cache = stage.forward(variant, x[:4], w, empty, *args)
    second, _ = stage.forward(variant, x[4:9], w, cache, *args)
    chunked = torch.cat([first["context_vecs"], second["context_vecs"]])
    assert max_diff(chunked, whole["context_vecs"]) <= TOL


# ---- the variants' special cases ---------------------------------------------------------------

def test_gqa_with_one_group_per_head_is_mha_without_the_out_bias():
    mha = build_decode(DecodeConfig(variant="mha", new_tokens=4, device="cpu"))
    gqa = build_decode(DecodeConfig(variant="gqa", num_kv_groups=4, new_tokens=4, device="cpu"))
    for name in ("W_query", "W_key", "W_value", "W_out"):                  # the same draws
        assert torch.equal(mha["decode_weights", name].tensor, gqa["decode_weights", name].tensor)
    assert "b_out" in mha.stages["decode_weights"] and "b_out" not in gqa.stages["decode_weights"]
    b_out = mha["decode_weights", "b_out"].tensor
    assert max_diff(gqa[SUMMARY, "context_vecs"].tensor, mha[SUMMARY, "context_vecs"].tensor - b_out) <= 1e-6


def test_the_books_gqa_with_groups_equal_to_heads_is_the_books_mha():
    torch.manual_seed(0)
    mha = ref.MultiHeadAttention(5, 8, 16, 0.0, 4).eval()
    gqa = ref.GroupedQueryAttention(5, 8, 0.0, 4, 4).eval()
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value"):
            getattr(gqa, name).weight.copy_(getattr(mha, name).weight)
        gqa.out_proj.weight.copy_(mha.out_proj.weight)
        mha.out_proj.bias.zero_()
    x = torch.rand(2, 9, 5)
    assert max_diff(ref.generate(gqa, x, 4), ref.generate(mha, x, 4)) <= TOL


def test_gqa_with_one_group_is_mqa():
    gqa = build_decode(DecodeConfig(variant="gqa", num_kv_groups=1, new_tokens=4, device="cpu"))
    mqa = build_decode(DecodeConfig(variant="mqa", new_tokens=4, device="cpu"))
    for (_, a), (_, b) in zip(gqa.stages.items(), mqa.stages.items()):
        assert list(a) == list(b)
        for name in a:                                                     # the same draws, the same code
            assert torch.equal(a[name].tensor, b[name].tensor), name


@pytest.mark.parametrize("window", [10, 11, 50])
def test_swa_with_a_window_at_least_the_sequence_is_causal_attention(window):
    mha = build_decode(DecodeConfig(variant="mha", new_tokens=4, device="cpu"))         # 10 tokens
    swa = build_decode(DecodeConfig(variant="swa", sliding_window_size=window, new_tokens=4, device="cpu"))
    assert max_diff(swa[SUMMARY, "context_vecs"].tensor, mha[SUMMARY, "context_vecs"].tensor) <= 1e-6
    for p in swa.positions:
        assert bool((swa.step(p)["band_row"].tensor == 1).all())            # nothing outside the window yet


def test_the_books_swa_with_a_wide_window_is_the_books_causal_mha():
    torch.manual_seed(1)
    mha = ref.MultiHeadAttention(4, 6, 16, 0.0, 3).eval()
    swa = ref.MultiHeadAttentionWithSWA(4, 6, 0.0, 3, sliding_window_size=12).eval()
    swa.load_state_dict(mha.state_dict(), strict=False)
    x = torch.rand(1, 12, 4)
    assert max_diff(ref.generate(swa, x, 5), ref.generate(mha, x, 5)) <= TOL


def test_gqa_records_repeat_interleave_each_query_head_reads_its_groups_kv():
    trace = build_decode(DecodeConfig(variant="gqa", d_out=16, num_heads=8, num_kv_groups=2, device="cpu"))
    step = trace.step(8)
    cache_k, keys = step["cache_k"].tensor, step["keys"].tensor
    assert cache_k.shape == (2, 9, 2) and keys.shape == (8, 9, 2)
    for h in range(8):
        assert torch.equal(keys[h], cache_k[h // 4])                        # [K1, K1, K1, K1, K2, …]
    assert step["cache_k"].labels[0] == ("kv0", "kv1")


def test_mla_caches_only_the_latent_and_up_projects_it():
    trace = build_decode(DecodeConfig(variant="mla", latent_dim=3, device="cpu"))
    w = trace.stages["decode_weights"]
    for p in trace.positions:
        step = trace.step(p)
        assert "cache_k" not in step and step["cache_c_kv"].shape == (p + 1, 3)
        c_kv = step["cache_c_kv"].tensor
        keys = (c_kv @ w["W_UK"].tensor).view(p + 1, 4, 2).transpose(0, 1)
        assert max_diff(step["keys"].tensor, keys) <= 1e-6
        assert torch.equal(c_kv[-1], step["latent_new"].tensor[0])


def test_swa_ring_buffer_holds_the_last_w_positions_at_slot_pos_mod_w():
    W = 3
    trace = build_decode(DecodeConfig(variant="swa", sliding_window_size=W, new_tokens=5, device="cpu"))
    keys_new = {p: trace.step(p)["keys_new"].tensor[:, 0] for p in trace.positions}
    for p in trace.positions:
        step = trace.step(p)
        ring_pos = step["ring_positions"].tensor.tolist()
        assert sorted(ring_pos) == list(range(p - W + 1, p + 1))
        assert all(ring_pos[q % W] == q for q in ring_pos)
        assert step["key_positions"].tensor.tolist() == list(range(p - W + 1, p + 1))   # oldest first
        assert step["mask"].tensor.tolist() == [[1.0] * W]                 # the cache holds only the window
        assert step["band_row"].tensor[0].tolist() == [0.0] * (p + 1 - W) + [1.0] * W
        for q in ring_pos:
            if q in keys_new:                                              # a row a step wrote: copied as is
                assert torch.equal(step["ring_k"].tensor[:, q % W], keys_new[q])
    assert trace.step(6)["ring_k"].labels[1] == ("slot0", "slot1", "slot2")


def test_the_causal_cache_grows_by_one_row_and_keeps_the_old_rows():
    trace = build_decode(DecodeConfig(variant="mha", new_tokens=3, device="cpu"))
    before = trace["decode_prefill", "cache_k"].tensor
    for p in trace.positions:
        step = trace.step(p)
        assert step["cache_k"].shape == (4, p + 1, 2)
        assert torch.equal(step["cache_k"].tensor[:, :p], before)
        assert torch.equal(step["cache_k"].tensor[:, p], step["keys_new"].tensor[:, 0])
        assert step["mask"].tensor.tolist() == [[1.0] * (p + 1)]           # row p of the causal mask, sliced
        assert step["attn_scores"].labels[-1] == trace.labels[:p + 1]
        before = step["cache_k"].tensor


def test_mha_prefill_is_the_chapters_multihead_stage():
    """The same weights as stage 4 (core.weights.draw_fused) and its outputs on the prompt."""
    cfg = DecodeConfig(variant="mha", d_out=4, num_heads=2, device="cpu")
    trace = build_decode(cfg)
    chapter = build_trace(AttentionConfig(d_out=4, num_heads=2, device="cpu"))
    for name in ("W_query", "W_key", "W_value", "W_out", "b_out"):
        assert torch.equal(trace["decode_weights", name].tensor, chapter["multihead", name].tensor)
    assert max_diff(trace["decode_prefill", "context_vecs"].tensor, chapter["multihead", "context_vecs"].tensor) <= 1e-6
    assert max_diff(trace["decode_prefill", "attn_weights"].tensor, chapter["multihead", "attn_weights"].tensor) <= 1e-6


def test_next_text_appends_those_words_a_prompt_word_keeps_its_vector():
    trace = build_decode(DecodeConfig(variant="gqa", next_text="one more step", new_tokens=3, device="cpu"))
    assert trace.tokens[6:] == ("one", "more", "step")
    assert trace.labels[6:] == ("one#2", "more", "step#2")
    x = trace[SUMMARY, "inputs"].tensor
    assert torch.equal(x[6], x[4]) and torch.equal(x[8], x[5])              # the book's rows again
    assert trace.step(7)["x_new"].labels[0] == ("more",)


def test_the_weights_are_drawn_without_touching_the_callers_rng():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    build_decode(DecodeConfig(variant="mla", device="cpu"))
    assert torch.equal(torch.get_rng_state(), before)


def test_every_term_computed_has_a_code_line_and_the_inspector_explains_a_score():
    from core.provenance import Cell

    for variant in stage.VARIANTS:
        cfg = DecodeConfig(variant=variant, device="cpu")
        trace = build_decode(cfg)
        step = trace.step(7)
        tagged = {n for n, _ in stage.code(cfg) if n is not None}
        assert set(step) <= tagged, variant
        assert tagged <= set(stage.TERMS), variant
        cell = Cell(trace, step_stage(7, 9), "attn_scores", (1, 0, 3))
        explained = stage.explain(cell)
        assert abs(explained.recomputed - explained.value) <= 1e-6
        check = stage.explain(Cell(trace, step_stage(7, 9), "check", (0,)))
        assert "recomputed" in check.text


@pytest.mark.parametrize("changes, field", [
    ({"variant": "gqa", "num_heads": 4, "num_kv_groups": 3}, "num_kv_groups"),
    ({"variant": "gqa", "num_kv_groups": 8}, "num_kv_groups"),
    ({"variant": "mha", "num_kv_groups": 2}, "num_kv_groups"),
    ({"variant": "mqa", "num_kv_groups": 2}, "num_kv_groups"),
    ({"variant": "mla", "num_kv_groups": 2}, "num_kv_groups"),
    ({"variant": "swa", "sliding_window_size": 0}, "sliding_window_size"),
    ({"variant": "mla", "latent_dim": 9}, "latent_dim"),
    ({"variant": "mla", "latent_dim": 0}, "latent_dim"),
    ({"variant": "mha", "latent_dim": 4}, "latent_dim"),
    ({"variant": "gqa", "sliding_window_size": 4}, "sliding_window_size"),
    ({"new_tokens": 0}, "new_tokens"),
    ({"new_tokens": 257}, "new_tokens"),
    ({"new_tokens": 2, "next_text": "three more words"}, "new_tokens"),
    ({"variant": "xla"}, "variant"),
    ({"d_out": 6, "num_heads": 4}, "num_heads"),
    ({"embeddings": "random", "text": words(1000), "new_tokens": 30}, "new_tokens"),
])
def test_bad_combinations_name_their_field(changes, field):
    with pytest.raises(ConfigError) as err:
        DecodeConfig(device="cpu", **changes)
    assert err.value.field == field


# ---- the export --------------------------------------------------------------------------------

def test_export_round_trip_manifest_and_csv(tmp_path):
    from core.cli import run_export
    from core.export import read_csv_slice

    out = tmp_path / "out"
    assert run_export(["--stage", "decode", "--variant", "gqa", "--heads", "8", "--d-out", "16", "--kv-groups", "2",
                       "--new-tokens", "3", "--out", str(out), "--device", "cpu"]) == 0
    trace = build_decode(DecodeConfig(variant="gqa", num_heads=8, d_out=16, num_kv_groups=2, new_tokens=3,
                                      device="cpu"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["variant"] == "gqa" and manifest["config"]["num_kv_groups"] == 2
    assert manifest["tokens"] == list(trace.tokens)
    stages = list(dict.fromkeys(t["stage"] for t in manifest["tensors"]))
    assert stages == ["decode_weights", "decode_prefill", "decode_pos6", "decode_pos7", "decode_pos8", "decode_summary"]
    files = {t["file"] for t in manifest["tensors"]}
    assert {f"decode_pos7/cache_k_g{g}.csv" for g in range(2)} <= files
    assert {f"decode_pos7/keys_h{h}.csv" for h in range(8)} <= files
    for entry in manifest["tensors"]:                                    # every slice reads back exactly
        item = trace[entry["stage"], entry["name"]]
        rows, cols, values = read_csv_slice(out / entry["file"], dtype=item.numpy().dtype)
        want = item.numpy()[tuple(entry["index"])]
        assert list(want.shape) == entry["shape"] and values.size == want.size, entry["file"]   # 1-D: one row
        assert (values.reshape(want.shape) == want).all(), entry["file"]
        assert cols == list(item.labels[-1])
    rows, cols, _ = read_csv_slice(out / "decode_pos7" / "attn_weights_h5.csv")
    assert rows == [trace.labels[7]]
    assert cols == list(trace.labels[:8])


run_cli = partial(run_main, "export", "--stage", "decode")


@pytest.mark.parametrize("args, says", [
    (["--variant", "gqa", "--kv-groups", "3"], "--kv-groups: num_heads (4) must be divisible by num_kv_groups (3)"),
    (["--variant", "swa", "--window", "0"], "--window: must be between 1"),
    (["--variant", "mla", "--latent", "9"], "--latent: must be between 1 and 8"),
    (["--new-tokens", "0"], "--new-tokens: must be between 1 and 256"),
    (["--new-tokens", "99999999999999999999"], "--new-tokens: must be between 1 and 256"),
    (["--variant", "mha", "--window", "3"], "--window: applies to swa only"),
    (["--variant", "nope"], "--variant: must be one of mha, gqa, mqa, mla, swa"),
    (["--new-tokens", "x"], "'x' is not a whole number"),
])
def test_bad_export_options_exit_2_with_one_line_and_write_nothing(tmp_path, args, says):
    assert_refused(run_cli("--out", str(tmp_path / "out"), "--device", "cpu", *args), says)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("variant", stage.VARIANTS)
def test_the_inspector_rebuilds_every_computed_cell_it_explains(variant):
    """Every term of the prefill and a step: the explanation's arithmetic gives the cell's value."""
    from core.provenance import Cell

    cfg = DecodeConfig(variant=variant, qkv_bias=True, device="cpu", **({"sliding_window_size": 3} if variant == "swa" else {}))
    trace = build_decode(cfg)
    explained = 0
    for stage_name in ("decode_prefill", step_stage(8, 9)):
        for name, item in trace.stages[stage_name].items():
            arr = item.numpy()
            for index in {(0,) * arr.ndim, tuple(n - 1 for n in arr.shape)}:
                e = stage.explain(Cell(trace, stage_name, name, index))
                if e is not None and e.kind in ("dot", "softmax", "concat", "mask"):
                    explained += 1
                    assert e.recomputed == pytest.approx(e.value, abs=1e-5) or e.value == e.recomputed, (stage_name, name)
    assert explained >= 20


def test_a_trace_over_the_memory_budget_is_refused_with_one_line(tmp_path, monkeypatch, capsys):
    import core.memory
    from core.cli import run_export

    monkeypatch.setattr(core.memory, "available_bytes", lambda device="cpu": 10_000)
    with pytest.raises(SystemExit) as exit_:
        run_export(["--stage", "decode", "--out", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "too big for memory" in err and "--new-tokens" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
def test_cuda_gives_the_cpu_numbers():
    for variant in stage.VARIANTS:
        cpu = build_decode(DecodeConfig(variant=variant, new_tokens=5, device="cpu"))
        gpu = build_decode(DecodeConfig(variant=variant, new_tokens=5, device="cuda"))
        assert gpu.device == "cuda" and gpu[SUMMARY, "context_vecs"].tensor.is_cuda
        assert max_diff(gpu[SUMMARY, "context_vecs"].tensor.cpu(), cpu[SUMMARY, "context_vecs"].tensor) <= 1e-5
        assert float(gpu[SUMMARY, "max_abs_diff"].tensor.max()) <= TOL


@pytest.mark.parametrize("variant", stage.VARIANTS)
@pytest.mark.parametrize("bias", [False, True])
def test_the_code_panels_step_lines_are_the_forwards_and_run_to_every_step_tensor(variant, bias):
    """The panel's step lines are kv_step's / mla_step's own (core.stages.lines): run on the cache
    before each new token, every tagged line gives the step's recorded tensor bit for bit."""
    from core.decode import PREFILL, WEIGHTS
    options = {"sliding_window_size": 2, "new_tokens": 5} if variant == "swa" else {}
    cfg = DecodeConfig(variant=variant, qkv_bias=bias, device="cpu", **options)
    trace = build_decode(cfg)
    code = stage.code(cfg)
    names = [n for n, _ in code]
    body = code[names.index("x_new") + 1:names.index("recomputed")]
    kept = {"mla": ("cache_c_kv",), "swa": ("ring_k", "ring_v", "ring_positions")}.get(variant, ("cache_k", "cache_v"))
    before = PREFILL
    for p in trace.positions:
        now = step_stage(p, len(trace.tokens))
        env = {"torch": torch, "ptr": p, "x_new": trace[now, "x_new"].tensor,
               **{n: it.tensor for n, it in trace.stages[WEIGHTS].items()},
               **{n: trace[before, n].tensor for n in kept}}
        exec("\n".join(line for _, line in body), env)
        tagged = [(n, line.split(" = ")[0]) for n, line in body if n is not None]
        assert {n for n, _ in tagged} == set(trace.stages[now]) - {"position", "x_new", "recomputed", "check"}
        for name, var in tagged:           # band_row: the panel's row is (ptr + 1,), the trace's (1, ptr + 1)
            want = trace[now, name].tensor
            assert torch.equal(env[var].reshape(want.shape), want), (p, name)
        before = now
