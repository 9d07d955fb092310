"""Beyond chapter 3: rotary position embeddings (RoPE), applied to q and k before the scores.

Chapter 3's attention does not know the order of its tokens. RoPE (Su et al., 2021; the book's
Llama and Qwen3 chapters) rotates each query and key by an angle that grows with its position:
the head's dimensions are grouped into d/2 pairs, pair i is a 2-D vector, and at position m it
is turned by m·θ_i with θ_i = base^(−2i/d) (pair 0 turns fastest, the last pair slowest). A
score q_m · k_n then depends on m and n only through m − n: shift both positions by s and the
score stays the same.

Which dimensions make a pair:

- ``split`` (the book's Llama code, ``compute_rope``): pair i = (x_i, x_{i + d/2}), the two halves,
  rotated with ``x * cos + rotate_half(x) * sin``, ``rotate_half(x) = cat(−x2, x1)``;
- ``interleaved`` (the original paper, GPT-J, Meta's first Llama release): pair i = (x_{2i}, x_{2i+1}).

The two forms are the same rotation up to a permutation of the dimensions: interleaved on
x[perm] equals split on x, permuted, with perm = [0, d/2, 1, d/2 + 1, …] (learned weights absorb
the permutation: checkpoints are converted by permuting W_q and W_k's rows).

Here every rotation is written as a 2-D rotation of the pairs, (x, y) -> (x cos − y sin,
x sin + y cos); the tests compare it with the book's rotate_half and with a complex product.
Every step is a pure function: tensors in, new tensors out.
"""
from __future__ import annotations

import math

import torch

from core.stages.schema import Stage, term

FORMS = ("split", "interleaved")

# ---- the vocabulary ----------------------------------------------------------------------
# "token"/"query"/"key" = the prompt's tokens, "hd" = head_dim, "pair" = head_dim / 2 pairs,
# "position" = a token as the leading axis of its (pair, two) slice (one exported file per
# position), "two" = a pair's components (x, y), "one" = a single number.

TERMS = {
    "queries": term("Q", "(X W_q).view(T, h, hd)[:, head]", "the chosen head's queries, before RoPE", "token", "hd"),
    "keys": term("K", "(X W_k).view(T, h, hd)[:, head]", "the chosen head's keys, before RoPE", "token", "hd"),
    "theta": term("θ_i", "θ_i = base^(−2i/d)", "each pair's rotation per position (radians): pair 0 turns by 1 "
                  "radian per token, the last by about 1/base", "pair"),
    "angles": term("m·θ_i", "m·θ_i", "the angle pair i of the token at position m is turned by", "token", "pair"),
    "q_pairs": term("(q_x, q_y)", "split: (q_i, q_{i+d/2});  interleaved: (q_{2i}, q_{2i+1})",
                    "each query's pairs of dimensions as 2-D vectors, before the rotation", "position", "pair", "two"),
    "q_pairs_rot": term("R(mθ_i)(q_x, q_y)", "(x cos mθ − y sin mθ, x sin mθ + y cos mθ)",
                        "the query's pairs after the rotation (same length, turned by m·θ_i)",
                        "position", "pair", "two"),
    "k_pairs": term("(k_x, k_y)", "split: (k_i, k_{i+d/2});  interleaved: (k_{2i}, k_{2i+1})",
                    "each key's pairs of dimensions, before the rotation", "position", "pair", "two"),
    "k_pairs_rot": term("R(nθ_i)(k_x, k_y)", "(x cos nθ − y sin nθ, x sin nθ + y cos nθ)",
                        "the key's pairs after the rotation", "position", "pair", "two"),
    "queries_rot": term("Q_rope", "the rotated pairs put back in their dimensions", "the rotated queries",
                        "token", "hd"),
    "keys_rot": term("K_rope", "the rotated pairs put back in their dimensions", "the rotated keys", "token", "hd"),
    "scores": term("ω", "Q Kᵀ", "the chapter's scores, without position information", "query", "key"),
    "scores_rope": term("ω_rope", "Q_rope K_ropeᵀ", "the scores with RoPE: q_m · k_n depends on m − n", "query", "key"),
    "scores_shifted": term("ω_rope(m+s, n+s)", "R(m+s) q · R(n+s) k",
                           "the same queries and keys placed s positions later: the same scores", "query", "key"),
    "shift_check": term("max|Δ_s|", "max |ω_rope(m+s, n+s) − ω_rope(m, n)|",
                        "the relative-position property: 0 up to rounding", "one"),
    "permutation": term("perm", "split -> interleaved: [0, d/2, 1, d/2 + 1, …]",
                        "the dimension order that turns one form into the other (this form's dims, listed in "
                        "the other form's order)", "hd"),
    "queries_rot_other": term("Q_rope'", "other_form(Q[:, perm])[:, argsort(perm)]",
                              "the other form applied to the permuted queries, permuted back: equals Q_rope",
                              "token", "hd"),
    "keys_rot_other": term("K_rope'", "other_form(K[:, perm])[:, argsort(perm)]",
                           "the other form on the permuted keys, permuted back: equals K_rope", "token", "hd"),
    "scores_unpermuted": term("ω_other", "other_form(Q) other_form(K)ᵀ",
                              "the other form on the same dimensions, without the permutation: other pairs, "
                              "other scores (a checkpoint must be converted)", "query", "key"),
    "form_check": term("max|Δ_form|", "max |Q_rope' − Q_rope|, |K_rope' − K_rope|",
                       "split and interleaved agree up to the permutation: 0 up to rounding", "one"),
}


# ---- the steps ------------------------------------------------------------------------------

def theta(head_dim: int, base: float, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """θ_i = base^(−2i/d) for i = 0 … d/2 − 1 (the book's inv_freq). (d/2,)"""
    exponent = torch.arange(0, head_dim, 2, dtype=dtype, device=device) / head_dim     # 2i / d
    return 1.0 / (base ** exponent)


def angles(positions: torch.Tensor, theta_: torch.Tensor) -> torch.Tensor:
    """m·θ_i for every position m and pair i: (T,) × (d/2,) -> (T, d/2)."""
    return positions.to(theta_.dtype).unsqueeze(1) * theta_.unsqueeze(0)            # (T, 1) * (1, d/2) -> (T, d/2)


def to_pairs(x: torch.Tensor, form: str) -> torch.Tensor:
    """(T, d) -> (T, d/2, 2): split pairs dim i with i + d/2; interleaved pairs 2i with 2i + 1."""
    T, d = x.shape
    if form == "split":
        return torch.stack([x[:, :d // 2], x[:, d // 2:]], dim=-1)                  # 2 × (T, d/2) -> (T, d/2, 2)
    return x.reshape(T, d // 2, 2)                                                  # (T, d) -> (T, d/2, 2)


def from_pairs(p: torch.Tensor, form: str) -> torch.Tensor:
    """(T, d/2, 2) -> (T, d): the pairs back in their dimensions (to_pairs undone)."""
    T, half, _ = p.shape
    if form == "split":
        return torch.cat([p[..., 0], p[..., 1]], dim=-1)                            # 2 × (T, d/2) -> (T, d)
    return p.reshape(T, 2 * half)                                                   # (T, d/2, 2) -> (T, d)


def rotate(p: torch.Tensor, ang: torch.Tensor) -> torch.Tensor:
    """Each 2-D vector (x, y) turned by its angle: (T, d/2, 2), (T, d/2) -> (T, d/2, 2).
    cos and sin are taken of the angle as given (float64 here), then cast to p's dtype."""
    cos, sin = torch.cos(ang).to(p.dtype), torch.sin(ang).to(p.dtype)
    x, y = p[..., 0], p[..., 1]
    return torch.stack([x * cos - y * sin, x * sin + y * cos], dim=-1)             # 2 × (T, d/2) -> (T, d/2, 2)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float, form: str) -> dict[str, torch.Tensor]:
    """RoPE on rows x (T, d) at ``positions``: the pairs before/after and the rotated rows.

    θ and the angles are computed in float64 whatever x's dtype (recorded in x's dtype): in
    float32, m·θ_0 = m radians carries an error of about m × 6e-8, 0.06 rad at m = 10⁶, which
    would break the shifted-positions check for large shifts (the book's code uses float32)."""
    th = theta(x.shape[-1], base, torch.float64, x.device)
    ang = angles(positions, th)
    pairs = to_pairs(x, form)
    rotated = rotate(pairs, ang)
    return {"theta": th.to(x.dtype), "angles": ang.to(x.dtype), "pairs": pairs, "rotated_pairs": rotated,
            "rotated": from_pairs(rotated, form)}


def permutation(head_dim: int, form: str, device="cpu") -> torch.Tensor:
    """The order of this form's dimensions in the other form: other(x[:, perm]) = this(x)[:, perm].
    split -> interleaved: [0, d/2, 1, d/2 + 1, …]; interleaved -> split: its inverse."""
    half = head_dim // 2
    to_interleaved = torch.stack([torch.arange(half), torch.arange(half) + half], dim=-1).reshape(head_dim)   # (d/2, 2) -> (d,)
    perm = to_interleaved if form == "split" else torch.argsort(to_interleaved)
    return perm.to(device)


def other(form: str) -> str:
    return "interleaved" if form == "split" else "split"


def rope_stage(Q: torch.Tensor, K: torch.Tensor, base: float, form: str, shift: int) -> dict[str, torch.Tensor]:
    """Everything the stage shows for one head's Q and K (T, d)."""
    T, d = Q.shape
    positions = torch.arange(T, device=Q.device)
    q, k = apply_rope(Q, positions, base, form), apply_rope(K, positions, base, form)
    scores = Q @ K.T                                                                # (T, d) @ (d, T) -> (T, T)
    scores_rope = q["rotated"] @ k["rotated"].T
    q_s = apply_rope(Q, positions + shift, base, form)["rotated"]                   # every token s positions later
    k_s = apply_rope(K, positions + shift, base, form)["rotated"]
    scores_shifted = q_s @ k_s.T
    perm = permutation(d, form, Q.device)
    back = torch.argsort(perm)
    alt = other(form)
    q_other = apply_rope(Q[:, perm], positions, base, alt)["rotated"][:, back]     # (T, d) in this form's order
    k_other = apply_rope(K[:, perm], positions, base, alt)["rotated"][:, back]
    unpermuted = apply_rope(Q, positions, base, alt)["rotated"] @ apply_rope(K, positions, base, alt)["rotated"].T
    form_check = torch.maximum((q_other - q["rotated"]).abs().max(), (k_other - k["rotated"]).abs().max())
    return {"queries": Q, "keys": K, "theta": q["theta"], "angles": q["angles"],
            "q_pairs": q["pairs"], "q_pairs_rot": q["rotated_pairs"], "k_pairs": k["pairs"],
            "k_pairs_rot": k["rotated_pairs"], "queries_rot": q["rotated"], "keys_rot": k["rotated"],
            "scores": scores, "scores_rope": scores_rope, "scores_shifted": scores_shifted,
            "shift_check": (scores_shifted - scores_rope).abs().max().reshape(1),
            "permutation": perm.to(Q.dtype), "queries_rot_other": q_other, "keys_rot_other": k_other,
            "scores_unpermuted": unpermuted, "form_check": form_check.reshape(1)}


# ---- the code panel ------------------------------------------------------------------------

def code(cfg) -> list[tuple[str | None, str]]:
    """The lines for ``cfg`` (a core.tiled_config.RopeConfig), tagged by the intermediate each makes."""
    d, base, s = cfg.head_dim, cfg.base, cfg.shift
    c: list[tuple[str | None, str]] = [
        ("queries", f"Q = queries[{cfg.head}]  # (h, T, hd) -> (T, hd): head {cfg.head} of the multi-head stage"),
        ("keys", f"K = keys[{cfg.head}]"),
        (None, f"T, d = Q.shape  # d = {d}"),
        ("theta", f"theta = 1.0 / ({base:g} ** (torch.arange(0, d, 2, dtype=torch.float64) / d))  # (d/2,): base^(-2i/d)"),
        ("angles", "angles = torch.arange(T)[:, None] * theta[None, :]  # (T, 1) * (1, d/2) -> (T, d/2)"),
        (None, "cos, sin = torch.cos(angles), torch.sin(angles)")]
    if cfg.form == "split":
        c += [(None, "def pairs(x): return torch.stack([x[:, :d // 2], x[:, d // 2:]], dim=-1)  # (T, d) -> (T, d/2, 2): (x_i, x_i+d/2)"),
              (None, "def unpair(p): return torch.cat([p[..., 0], p[..., 1]], dim=-1)  # (T, d/2, 2) -> (T, d)")]
    else:
        c += [(None, "def pairs(x): return x.view(T, d // 2, 2)  # (T, d) -> (T, d/2, 2): (x_2i, x_2i+1)"),
              (None, "def unpair(p): return p.reshape(T, d)  # (T, d/2, 2) -> (T, d)")]
    c += [(None, "def turn(p, cos, sin): return torch.stack([p[..., 0] * cos - p[..., 1] * sin,"),
          (None, "                                         p[..., 0] * sin + p[..., 1] * cos], dim=-1)"),
          ("q_pairs", "q_pairs = pairs(Q)"),
          ("q_pairs_rot", "q_pairs_rot = turn(q_pairs, cos, sin)  # each pair turned by m·theta_i"),
          ("k_pairs", "k_pairs = pairs(K)"),
          ("k_pairs_rot", "k_pairs_rot = turn(k_pairs, cos, sin)"),
          ("queries_rot", "Q_rope = unpair(q_pairs_rot)"
                          + ("  # = Q * cat([cos, cos], -1) + rotate_half(Q) * cat([sin, sin], -1) (the book)"
                             if cfg.form == "split" else "")),
          ("keys_rot", "K_rope = unpair(k_pairs_rot)"),
          ("scores", "scores = Q @ K.T  # (T, d) @ (d, T) -> (T, T): no position information"),
          ("scores_rope", "scores_rope = Q_rope @ K_rope.T"),
          (None, f"ang_s = (torch.arange(T)[:, None] + {s}) * theta[None, :]  # every position moved by s = {s}"),
          ("scores_shifted", "scores_shifted = unpair(turn(pairs(Q), ang_s.cos(), ang_s.sin())) @ "
                             "unpair(turn(pairs(K), ang_s.cos(), ang_s.sin())).T"),
          ("shift_check", "shift_check = (scores_shifted - scores_rope).abs().max()  # depends on m - n only"),
          ("permutation", "perm = torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], -1).view(d)"
                          + ("" if cfg.form == "split" else ".argsort()") + "  # (d/2, 2) -> (d,)"),
          ("queries_rot_other", f"Q_rope_other = rope_{other(cfg.form)}(Q[:, perm])[:, perm.argsort()]"),
          ("keys_rot_other", f"K_rope_other = rope_{other(cfg.form)}(K[:, perm])[:, perm.argsort()]"),
          ("scores_unpermuted", f"scores_unpermuted = rope_{other(cfg.form)}(Q) @ rope_{other(cfg.form)}(K).T  # no permutation"),
          ("form_check", "form_check = max((Q_rope_other - Q_rope).abs().max(), (K_rope_other - K_rope).abs().max())")]
    return c


# ---- the inspector -------------------------------------------------------------------------

def _relative(c, m: int, n: int, diff: int, label: str):
    """q_m · k_n after RoPE, written with the pairs as complex numbers: Σ_i Re(q_i conj(k_i) e^{i(m−n)θ_i})."""
    S = c.stage
    qp, kp, th = _arr(c, "q_pairs")[m], _arr(c, "k_pairs")[n], _arr(c, "theta")
    total, lines = 0.0, []
    for i in range(len(th)):
        qx, qy, kx, ky = (float(v) for v in (qp[i, 0], qp[i, 1], kp[i, 0], kp[i, 1]))
        a = diff * float(th[i])
        re, im = qx * kx + qy * ky, qy * kx - qx * ky           # q conj(k)
        part = re * math.cos(a) - im * math.sin(a)
        total += part
        if i < 6:
            lines.append(f"pair {i}: Re(({c.f(qx)} + {c.f(qy)}i)·({c.f(kx)} − {c.f(ky)}i)·e^(i·{diff}·{c.f(float(th[i]))}))"
                         f" = {c.f(part)}")
    lines.append(f"sum over {len(th)} pairs = {c.f(total)}: only m − n = {diff} enters, not m or n")
    return c.done("dot", f"{label} = Σ_i Re(q_i · conj(k_i) · e^(i(m−n)θ_i))", lines, total,
                  [c.source(S, "q_pairs", (m,), None, None), c.source(S, "k_pairs", (n,), None, None),
                   c.source(S, "theta", (), None, None)])


def _arr(c, name):
    return c.trace[c.stage, name].numpy()


def explain(c):
    """The arithmetic of a clicked cell of the RoPE stage; ``c`` is a core.provenance.Cell."""
    name, S, cfg = c.name, c.stage, c.cfg
    tok = c.trace.labels
    d = cfg.head_dim
    if name == "theta":
        i = c.j
        value = 1.0 / cfg.base ** (2 * i / d)
        return c.done("power", f"θ_{i} = base^(−2·{i}/{d}) = {cfg.base:g}^(−{2 * i / d:.4g})", [f"= {value:.6g} radians per position"],
                      value)
    if name == "angles":
        m, i = c.i, c.j
        th = float(c.get(S, "theta")[i])
        return c.done("product", f"angle[{tok[m]}, pair {i}] = m·θ_{i} = {m} × {th:.6g}",
                      [f"= {m * th:.6g} radians = {math.degrees(m * th) % 360:.1f}° (mod 360)"], m * th,
                      [c.source(S, "theta", (), None, (i,))])
    if name in ("q_pairs_rot", "k_pairs_rot"):
        m, i, comp = c.lead[0], c.i, c.j
        src = "q_pairs" if name == "q_pairs_rot" else "k_pairs"
        x, y = (float(v) for v in _arr(c, src)[m][i])
        a = float(c.get(S, "angles")[m, i])
        value = x * math.cos(a) - y * math.sin(a) if comp == 0 else x * math.sin(a) + y * math.cos(a)
        formula = (f"x' = x cos a − y sin a = {c.f(x)}×{c.f(math.cos(a))} − {c.f(y)}×{c.f(math.sin(a))}" if comp == 0
                   else f"y' = x sin a + y cos a = {c.f(x)}×{c.f(math.sin(a))} + {c.f(y)}×{c.f(math.cos(a))}")
        return c.done("rotation", formula, [f"a = {m}·θ_{i} = {c.f(a)} rad; = {c.f(value)}",
                                            f"the length stays {c.f(math.hypot(x, y))}"], value,
                      [c.source(S, src, (m,), (i,), None), c.source(S, "angles", (), (m,), (i,))])
    if name in ("q_pairs", "k_pairs"):
        m, i, comp = c.lead[0], c.i, c.j
        dim = (i if comp == 0 else i + d // 2) if cfg.form == "split" else 2 * i + comp
        src = "queries" if name == "q_pairs" else "keys"
        return c.done("copy", f"{name}[{tok[m]}, pair {i}, {'xy'[comp]}] = {src}[{tok[m]}, d{dim}]",
                      [f"{cfg.form}: pair {i} = dims ({i}, {i + d // 2})" if cfg.form == "split"
                       else f"interleaved: pair {i} = dims ({2 * i}, {2 * i + 1})"],
                      float(c.get(S, src)[m, dim]), [c.source(S, src, (), (m,), (dim,))])
    if name in ("queries_rot", "keys_rot"):
        m, dim = c.i, c.j
        pair, comp = ((dim % (d // 2), dim // (d // 2)) if cfg.form == "split" else divmod(dim, 2))
        src = "q_pairs_rot" if name == "queries_rot" else "k_pairs_rot"
        value = float(_arr(c, src)[m][pair, comp])
        return c.done("copy", f"{name}[{tok[m]}, d{dim}] = {src}[{tok[m]}, pair {pair}, {'xy'[comp]}]",
                      ["the rotated pair put back in its dimensions"], value, [c.source(S, src, (m,), (pair,), (comp,))])
    if name == "scores":
        q, k = c.get(S, "queries")[c.i], c.get(S, "keys")[c.j]
        products, total, lines = c.dot(q, k, f"q_{tok[c.i]}", f"k_{tok[c.j]}", ("dims",))
        return c.done("dot", f"ω[{tok[c.i]}, {tok[c.j]}] = q · k", lines, total,
                      [c.source(S, "queries", (), (c.i,), None), c.source(S, "keys", (), (c.j,), None)], products)
    if name in ("scores_rope", "scores_shifted"):
        label = (f"ω_rope[{tok[c.i]}, {tok[c.j]}]" if name == "scores_rope"
                 else f"ω_rope[{tok[c.i]} at {c.i + cfg.shift}, {tok[c.j]} at {c.j + cfg.shift}]")
        return _relative(c, c.i, c.j, c.i - c.j, label)
    if name in ("shift_check", "form_check"):
        what = ("every score with both positions moved by s = " f"{cfg.shift} against the unmoved ones"
                if name == "shift_check" else
                f"the {other(cfg.form)} form on the permuted dimensions against the {cfg.form} form")
        return c.done("check", f"{TERMS[name].formula} = {c.value:.3g}", [what, "equal up to float rounding"], c.value)
    if name == "permutation":
        return c.done("given", f"perm[{c.j}] = {int(c.value)}",
                      [f"dimension {int(c.value)} of the {cfg.form} form is dimension {c.j} of the {other(cfg.form)} form"],
                      c.value)
    return None


STAGE = Stage("rope", "Rotary position embeddings (RoPE)", "beyond ch03", TERMS, rope_stage, code, explain,
              external=True)
