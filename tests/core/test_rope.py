"""The RoPE stage against independent implementations written here: the book's Llama code
(precompute_rope_params + compute_rope with rotate_half) for the split-halves form, a complex
product for the interleaved form; the relative-position property; split vs interleaved equal up
to the permutation; the chapter's head; the inspector; bad options."""
import math

import pytest
import torch

from core import AttentionConfig, build_trace
from core.config import ConfigError
from core.rope import STAGE, build_rope
from core.stages import rope as stage
from core.tiled_config import RopeConfig
from tests.core.cli_runner import assert_refused, run_main

TOL32 = 1e-5     # float32: cos/sin of angles up to T radians and a different order of products
TOL64 = 1e-12


# ---- the independent references ----------------------------------------------------------------

def book_precompute_rope_params(head_dim, theta_base=10_000, context_length=4096, dtype=torch.float32):
    """The book's ch05 Llama code (float32 there; the dtype is a parameter here)."""
    assert head_dim % 2 == 0, "Embedding dimension must be even"
    inv_freq = 1.0 / (theta_base ** (torch.arange(0, head_dim, 2, dtype=dtype)[: (head_dim // 2)] / head_dim))
    positions = torch.arange(context_length, dtype=dtype)
    angles = positions[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=1)
    return torch.cos(angles), torch.sin(angles)


def book_compute_rope(x, cos, sin, offset=0):
    batch_size, num_heads, seq_len, head_dim = x.shape
    assert head_dim % 2 == 0, "Head dimension must be even"
    x1 = x[..., : head_dim // 2]
    x2 = x[..., head_dim // 2:]
    cos = cos[offset:offset + seq_len, :].unsqueeze(0).unsqueeze(0)
    sin = sin[offset:offset + seq_len, :].unsqueeze(0).unsqueeze(0)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x * cos) + (rotated * sin)


def split_reference(x, base, offset=0):
    T, d = x.shape
    cos, sin = book_precompute_rope_params(d, base, offset + T, x.dtype)
    return book_compute_rope(x[None, None], cos, sin, offset)[0, 0]


def interleaved_reference(x, base, offset=0):
    """The original paper's form: pair (x_2i, x_2i+1) as the complex number x_2i + i·x_2i+1, times e^{i m θ_i}."""
    T, d = x.shape
    freqs = base ** (-torch.arange(0, d, 2, dtype=x.dtype) / d)
    m = torch.arange(offset, offset + T, dtype=x.dtype)
    rot = torch.polar(torch.ones(T, d // 2, dtype=x.dtype), torch.outer(m, freqs))
    z = torch.view_as_complex(x.reshape(T, d // 2, 2).contiguous())
    return torch.view_as_real(z * rot).reshape(T, d)


REFERENCE = {"split": split_reference, "interleaved": interleaved_reference}


def rand(T, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, d, generator=g, dtype=dtype), torch.randn(T, d, generator=g, dtype=dtype)


CASES = [(1, 2, 10_000.0), (6, 4, 10_000.0), (9, 8, 10_000.0), (17, 16, 1_000_000.0), (33, 64, 500_000.0),
         (12, 6, 100.0)]


@pytest.mark.parametrize("form", stage.FORMS)
@pytest.mark.parametrize("T, d, base", CASES)
def test_rope_equals_the_independent_implementation_of_its_form(T, d, base, form):
    for dtype, tol in ((torch.float32, TOL32), (torch.float64, TOL64)):
        Q, K = rand(T, d, dtype, seed=T * d)
        out = stage.rope_stage(Q, K, base, form, shift=5)
        ref = REFERENCE[form]
        assert float((out["queries_rot"] - ref(Q, base)).abs().max()) <= tol, dtype
        assert float((out["keys_rot"] - ref(K, base)).abs().max()) <= tol, dtype
        want_scores = ref(Q, base) @ ref(K, base).T
        assert float((out["scores_rope"] - want_scores).abs().max()) <= tol * 10, dtype
        assert torch.equal(out["scores"], Q @ K.T)


@pytest.mark.parametrize("form", stage.FORMS)
@pytest.mark.parametrize("shift", [0, 1, 7, 100, 1000])
def test_the_relative_position_property_holds_to_1e_5(form, shift):
    Q, K = rand(11, 8, torch.float32, seed=shift)
    out = stage.rope_stage(Q, K, 10_000.0, form, shift)
    assert float(out["shift_check"]) <= 1e-5
    # independently: the reference form at positions s … s + T − 1 against 0 … T − 1
    ref = REFERENCE[form]
    Q64, K64 = Q.double(), K.double()
    moved = ref(Q64, 10_000.0, offset=shift) @ ref(K64, 10_000.0, offset=shift).T
    still = ref(Q64, 10_000.0) @ ref(K64, 10_000.0).T
    assert float((moved - still).abs().max()) <= 1e-9
    assert float((out["scores_shifted"].double() - moved).abs().max()) <= 1e-5


def test_a_score_depends_on_m_minus_n_only_for_any_positions():
    Q, K = rand(1, 8, torch.float64, seed=3)
    scores = {}
    for m, n in [(5, 2), (13, 10), (103, 100), (3, 0), (2, 5), (12, 15)]:
        q = stage.apply_rope(Q, torch.tensor([m]), 10_000.0, "split")["rotated"]
        k = stage.apply_rope(K, torch.tensor([n]), 10_000.0, "split")["rotated"]
        scores.setdefault(m - n, []).append(float(q @ k.T))
    for diff, values in scores.items():
        assert max(values) - min(values) <= 1e-12, diff
    assert abs(scores[3][0] - scores[-3][0]) > 1e-6            # but the sign of m − n matters


@pytest.mark.parametrize("form", stage.FORMS)
@pytest.mark.parametrize("d", [2, 4, 8, 16])
def test_split_and_interleaved_are_equal_up_to_the_permutation(form, d):
    Q, K = rand(7, d, torch.float64, seed=d)
    out = stage.rope_stage(Q, K, 10_000.0, form, 3)
    assert float(out["form_check"]) <= TOL64
    perm = out["permutation"].long()
    assert sorted(perm.tolist()) == list(range(d))
    # independently: the paper's form on the permuted dims is the book's form, permuted
    split = torch.arange(d // 2)
    to_interleaved = torch.stack([split, split + d // 2], dim=-1).reshape(d)
    assert float((interleaved_reference(Q[:, to_interleaved], 10_000.0) - split_reference(Q, 10_000.0)[:, to_interleaved]).abs().max()) <= TOL64
    assert torch.equal(perm, to_interleaved if form == "split" else torch.argsort(to_interleaved))
    assert float((out["queries_rot_other"] - out["queries_rot"]).abs().max()) <= TOL64
    if d >= 4:       # the other form on the same dims pairs other dimensions: other scores
        assert float((out["scores_unpermuted"] - out["scores_rope"]).abs().max()) > 1e-3
    else:            # one pair: both forms pair (0, 1)
        assert float((out["scores_unpermuted"] - out["scores_rope"]).abs().max()) <= TOL64


@pytest.mark.parametrize("form", stage.FORMS)
def test_the_pairs_are_the_forms_dimensions_turned_by_m_theta(form):
    Q, K = rand(6, 8, torch.float64, seed=9)
    out = stage.rope_stage(Q, K, 10_000.0, form, 3)
    assert out["q_pairs"].shape == (6, 4, 2) and out["k_pairs_rot"].shape == (6, 4, 2)
    for i in range(4):
        a, b = (i, i + 4) if form == "split" else (2 * i, 2 * i + 1)
        assert torch.equal(out["q_pairs"][:, i, 0], Q[:, a]) and torch.equal(out["q_pairs"][:, i, 1], Q[:, b])
        assert torch.equal(out["queries_rot"][:, a], out["q_pairs_rot"][:, i, 0])
    theta = [10_000.0 ** (-2 * i / 8) for i in range(4)]
    assert torch.allclose(out["theta"], torch.tensor(theta, dtype=torch.float64), rtol=1e-15, atol=0)
    assert torch.allclose(out["angles"], torch.outer(torch.arange(6.0, dtype=torch.float64), out["theta"]), rtol=0, atol=1e-15)
    # a rotation keeps each pair's length and turns it by m·θ_i
    assert torch.allclose(out["q_pairs_rot"].norm(dim=-1), out["q_pairs"].norm(dim=-1), rtol=0, atol=1e-12)
    turned = torch.atan2(out["q_pairs_rot"][..., 1], out["q_pairs_rot"][..., 0]) - torch.atan2(out["q_pairs"][..., 1], out["q_pairs"][..., 0])
    assert torch.allclose(torch.remainder(turned - out["angles"] + math.pi, 2 * math.pi) - math.pi,
                          torch.zeros_like(turned), atol=1e-9)
    assert torch.equal(out["queries_rot"][0], Q[0])           # position 0: cos 0 = 1, sin 0 = 0


@pytest.mark.parametrize("form", stage.FORMS)
def test_the_trace_rotates_the_multihead_stages_head(form):
    trace = build_rope(RopeConfig(d_out=8, num_heads=2, head=1, form=form, base=1_000_000.0, device="cpu"))
    chapter = build_trace(AttentionConfig(d_out=8, num_heads=2, device="cpu"))
    Q = chapter["multihead", "queries"].tensor.reshape(-1, 2, 6, 4)[0, 1]
    K = chapter["multihead", "keys"].tensor.reshape(-1, 2, 6, 4)[0, 1]
    assert torch.equal(trace[STAGE, "queries"].tensor, Q)
    assert float((trace[STAGE, "queries_rot"].tensor - REFERENCE[form](Q, 1_000_000.0)).abs().max()) <= TOL32
    assert float((trace[STAGE, "keys_rot"].tensor - REFERENCE[form](K, 1_000_000.0)).abs().max()) <= TOL32
    assert float(trace[STAGE, "shift_check"].tensor) <= 1e-5 and float(trace[STAGE, "form_check"].tensor) <= 1e-6
    assert trace[STAGE, "q_pairs"].labels == (trace.labels, ("pair0", "pair1"), ("x", "y"))


def test_every_term_has_a_code_line_and_the_inspector_rebuilds_the_cells():
    from core.provenance import Cell

    for form in stage.FORMS:
        cfg = RopeConfig(form=form, qkv_bias=True, device="cpu")
        trace = build_rope(cfg)
        tagged = {n for n, _ in stage.code(cfg) if n is not None}
        assert tagged == set(trace.stages[STAGE]) == set(stage.TERMS)
        explained = 0
        for name, item in trace.stages[STAGE].items():
            arr = item.numpy()
            for index in {(0,) * arr.ndim, tuple(n - 1 for n in arr.shape), tuple(n // 2 for n in arr.shape)}:
                e = stage.explain(Cell(trace, STAGE, name, index))
                if e is not None and e.kind not in ("given", "check"):
                    explained += 1
                    assert e.recomputed == pytest.approx(e.value, abs=1e-5), (form, name, index)
        assert explained >= 25


@pytest.mark.parametrize("changes, field", [
    ({"d_out": 6, "num_heads": 2}, "d_out"), ({"d_out": 5, "num_heads": 5}, "d_out"),
    ({"base": 1.0}, "base"), ({"base": float("inf")}, "base"), ({"base": "10000"}, "base"), ({"base": 1e13}, "base"),
    ({"form": "rotate"}, "form"), ({"shift": -1}, "shift"), ({"head": 2}, "head"),
])
def test_bad_options_name_their_field(changes, field):
    with pytest.raises(ConfigError) as err:
        RopeConfig(device="cpu", **changes)
    assert err.value.field == field


def test_base_one_million_is_allowed():
    assert RopeConfig(base=1_000_000.0, device="cpu").base == 1_000_000.0


# ---- the export --------------------------------------------------------------------------------

def test_export_round_trip_manifest_and_csv(tmp_path):
    import json

    from core.cli import run_export
    from core.export import read_csv_slice

    out = tmp_path / "out"
    assert run_export(["--stage=rope", "--form", "interleaved", "--base", "1000000", "--shift", "7",
                       "--out", str(out), "--device", "cpu"]) == 0
    trace = build_rope(RopeConfig(form="interleaved", base=1e6, shift=7, device="cpu"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["form"] == "interleaved" and manifest["config"]["base"] == 1e6
    files = {t["file"] for t in manifest["tensors"]}
    assert {f"rope/q_pairs_p{m}.csv" for m in range(6)} <= files        # (T, d/2, 2): one file per position
    for entry in manifest["tensors"]:
        item = trace[entry["stage"], entry["name"]]
        rows, cols, values = read_csv_slice(out / entry["file"], dtype=item.numpy().dtype)
        want = item.numpy()[tuple(entry["index"])]
        assert values.size == want.size and (values.reshape(want.shape) == want).all(), entry["file"]
    rows, cols, _ = read_csv_slice(out / "rope" / "k_pairs_rot_p2.csv")
    assert rows == [f"pair{i}" for i in range(4)] and cols == ["x", "y"]


@pytest.mark.parametrize("args, says", [
    (["--d-out", "6"], "--d-out: RoPE rotates pairs of dimensions: head_dim = d_out / num_heads = 6 / 2 = 3 must be even"),
    (["--base", "1"], "--base: must be a number above 1"),
    (["--base", "nan"], "--base: must be a number above 1"),
    (["--base", "x"], "'x' is not a number"),
    (["--form", "complex"], "--form: must be one of split, interleaved"),
    (["--shift", "-2"], "--shift: must be between 0 and 1000000"),
    (["--fa2"], "unrecognized arguments: --fa2"),
])
def test_bad_export_options_exit_2_with_one_line_and_write_nothing(tmp_path, args, says):
    assert_refused(run_main("export", "--stage", "rope", "--out", str(tmp_path / "out"), "--device", "cpu", *args),
                   says)
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
def test_cuda_gives_the_cpu_numbers():
    for form in stage.FORMS:
        cpu = build_rope(RopeConfig(form=form, device="cpu"))
        gpu = build_rope(RopeConfig(form=form, device="cuda"))
        assert gpu.device == "cuda" and gpu[STAGE, "queries_rot"].tensor.is_cuda
        assert float((gpu[STAGE, "scores_rope"].tensor.cpu() - cpu[STAGE, "scores_rope"].tensor).abs().max()) <= TOL32
        assert float(gpu[STAGE, "shift_check"].tensor) <= 1e-5


# ---- the forward written once: its records, its code panel lines ------------------------------

def _old_theta(head_dim, base, dtype, device="cpu"):
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=dtype, device=device) / head_dim))


def _old_apply_rope(x, positions, base, form):
    """The stage's rotation as it was written before its forward recorded each term (kept here as
    the reference): θ and angles in float64, pairs as 2-D vectors turned by cos/sin cast to x's dtype."""
    T, d = x.shape
    th = _old_theta(d, base, torch.float64, x.device)
    ang = positions.to(th.dtype).unsqueeze(1) * th.unsqueeze(0)
    pairs = torch.stack([x[:, :d // 2], x[:, d // 2:]], dim=-1) if form == "split" else x.reshape(T, d // 2, 2)
    cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    px, py = pairs[..., 0], pairs[..., 1]
    rot = torch.stack([px * cos - py * sin, px * sin + py * cos], dim=-1)
    back = torch.cat([rot[..., 0], rot[..., 1]], dim=-1) if form == "split" else rot.reshape(T, d)
    return {"theta": th.to(x.dtype), "angles": ang.to(x.dtype), "pairs": pairs, "rotated_pairs": rot, "rotated": back}


def _old_rope_stage(Q, K, base, form, shift):
    T, d = Q.shape
    positions = torch.arange(T)
    q, k = _old_apply_rope(Q, positions, base, form), _old_apply_rope(K, positions, base, form)
    scores_rope = q["rotated"] @ k["rotated"].T
    q_s = _old_apply_rope(Q, positions + shift, base, form)["rotated"]
    k_s = _old_apply_rope(K, positions + shift, base, form)["rotated"]
    scores_shifted = q_s @ k_s.T
    half = d // 2
    to_interleaved = torch.stack([torch.arange(half), torch.arange(half) + half], dim=-1).reshape(d)
    perm = to_interleaved if form == "split" else torch.argsort(to_interleaved)
    back = torch.argsort(perm)
    alt = "interleaved" if form == "split" else "split"
    q_other = _old_apply_rope(Q[:, perm], positions, base, alt)["rotated"][:, back]
    k_other = _old_apply_rope(K[:, perm], positions, base, alt)["rotated"][:, back]
    unpermuted = (_old_apply_rope(Q, positions, base, alt)["rotated"]
                  @ _old_apply_rope(K, positions, base, alt)["rotated"].T)
    form_check = torch.maximum((q_other - q["rotated"]).abs().max(), (k_other - k["rotated"]).abs().max())
    return {"queries": Q, "keys": K, "theta": q["theta"], "angles": q["angles"],
            "q_pairs": q["pairs"], "q_pairs_rot": q["rotated_pairs"], "k_pairs": k["pairs"],
            "k_pairs_rot": k["rotated_pairs"], "queries_rot": q["rotated"], "keys_rot": k["rotated"],
            "scores": Q @ K.T, "scores_rope": scores_rope, "scores_shifted": scores_shifted,
            "shift_check": (scores_shifted - scores_rope).abs().max().reshape(1),
            "permutation": perm.to(Q.dtype), "queries_rot_other": q_other, "keys_rot_other": k_other,
            "scores_unpermuted": unpermuted, "form_check": form_check.reshape(1)}


@pytest.mark.parametrize("form", stage.FORMS)
@pytest.mark.parametrize("T, d, base, shift", [(6, 2, 10_000.0, 0), (7, 8, 10_000.0, 3), (5, 16, 12345.678, 1_000_000),
                                               (9, 64, 500_000.0, 41)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_recording_forward_gives_the_earlier_implementations_every_tensor_exactly(form, T, d, base, shift, dtype):
    """The same torch operations in the same order: every term equal bit for bit, in the same
    dtype and order of terms (torch.equal; the permutation's integer indices are exact)."""
    Q, K = rand(T, d, dtype, seed=T + d + shift)
    new, old = stage.rope_stage(Q, K, base, form, shift), _old_rope_stage(Q, K, base, form, shift)
    assert list(new) == list(old) == list(stage.TERMS)
    for name in old:
        assert new[name].dtype == old[name].dtype == dtype and torch.equal(new[name], old[name]), name
    got = stage.apply_rope(Q, torch.arange(T) + shift, base, form)
    want = _old_apply_rope(Q, torch.arange(T) + shift, base, form)
    assert all(torch.equal(got[k], want[k]) for k in want) and list(got) == list(want)


@pytest.mark.parametrize("form", stage.FORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_code_panels_lines_run_to_the_stages_every_tensor(form, dtype):
    """The panel's lines are the forward's (core.stages.lines): executed on one head of Q and K,
    each tagged line's variable is the recorded tensor (θ and the angles cast to Q's dtype)."""
    from core.tiled_config import RopeConfig
    cfg = RopeConfig(form=form, head=1, base=12345.678, shift=1_000_000, device="cpu")
    Q, K = rand(6, 8, dtype, seed=5)
    named = stage.rope_stage(Q, K, cfg.base, cfg.form, cfg.shift)
    code = stage.code(cfg)
    env = {"torch": torch, "queries": torch.stack([K, Q]), "keys": torch.stack([Q, K])}      # head 1: Q, K
    exec("\n".join(line for _, line in code), env)
    for name, line in code:
        if name is not None:
            got = env[line.split(" = ")[0]]
            got = got.to(dtype) if name in ("theta", "angles") else got
            assert torch.equal(got, named[name]), name
    assert [n for n, _ in code if n] == list(stage.TERMS)        # one line per term, in the forward's order
    assert "def rope(x, angles, form):" in [line for _, line in code]

