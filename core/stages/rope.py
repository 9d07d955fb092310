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
Every step is a pure function: tensors in, new tensors out. ``rope_stage`` records each term
where it makes it (core/stages/ops.py); the code panel's lines are its own (core/stages/lines.py).
"""
from __future__ import annotations

import math

import torch

from core.stages.lines import definition, lines
from core.stages.ops import Ops
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


# ---- the steps: pure functions, tensors in, new tensors out ----------------------------------

def inv_freq(head_dim: int, base: float, device=None) -> torch.Tensor:
    """θ_i = base^(−2i/d) for i = 0 … d/2 − 1 (the book's inv_freq), in float64: (d/2,)."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim))


def angles_at(positions: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """m·θ_i for every position m and pair i: (T,) × (d/2,) -> (T, d/2)."""
    return positions.to(theta.dtype).unsqueeze(1) * theta.unsqueeze(0)


def to_pairs(x: torch.Tensor, form: str) -> torch.Tensor:
    """(T, d) -> (T, d/2, 2): split pairs dim i with i + d/2; interleaved pairs 2i with 2i + 1."""
    T, d = x.shape
    if form == "split":
        return torch.stack([x[:, :d // 2], x[:, d // 2:]], dim=-1)
    return x.reshape(T, d // 2, 2)


def rotate(pairs: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Each 2-D vector (x, y) turned by its angle: (T, d/2, 2), (T, d/2) -> (T, d/2, 2).
    cos and sin are taken of the angles as given (float64 here), then cast to the pairs' dtype."""
    cos, sin = torch.cos(angles).to(pairs.dtype), torch.sin(angles).to(pairs.dtype)   # (T, d/2) each
    x, y = pairs[..., 0], pairs[..., 1]                                                 # (T, d/2) each
    return torch.stack([x * cos - y * sin, x * sin + y * cos], dim=-1)


def from_pairs(p: torch.Tensor, form: str) -> torch.Tensor:
    """(T, d/2, 2) -> (T, d): the pairs back in their dimensions (to_pairs undone)."""
    T, half, _ = p.shape
    if form == "split":
        return torch.cat([p[..., 0], p[..., 1]], dim=-1)
    return p.reshape(T, 2 * half)


def rope(x: torch.Tensor, angles: torch.Tensor, form: str) -> torch.Tensor:
    """RoPE on the rows x (T, d) turned by the angles (T, d/2): (T, d)."""
    rotated = rotate(to_pairs(x, form), angles)                                         # (T, d/2, 2)
    return from_pairs(rotated, form)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float, form: str) -> dict[str, torch.Tensor]:
    """RoPE on rows x (T, d) at ``positions``: θ and the angles (computed in float64, given in
    x's dtype), the pairs before/after and the rotated rows."""
    theta = inv_freq(x.shape[-1], base, x.device)
    angles = angles_at(positions, theta)
    pairs = to_pairs(x, form)
    rotated = rotate(pairs, angles)
    return {"theta": theta.to(x.dtype), "angles": angles.to(x.dtype), "pairs": pairs, "rotated_pairs": rotated,
            "rotated": from_pairs(rotated, form)}


def other_order(d: int, form: str, device=None) -> torch.Tensor:
    """The order of this form's dimensions in the other form: other(x[:, perm]) = this(x)[:, perm].
    split -> interleaved: [0, d/2, 1, d/2 + 1, …]; interleaved -> split: its inverse. (d,)"""
    i = torch.arange(d // 2, device=device)
    to_interleaved = torch.stack([i, i + d // 2], dim=-1).reshape(d)                     # (d/2, 2) -> (d,)
    return to_interleaved if form == "split" else to_interleaved.argsort()


def other(form: str) -> str:
    return "interleaved" if form == "split" else "split"


def rope_stage(Q: torch.Tensor, K: torch.Tensor, base: float, form: str, shift: int) -> dict[str, torch.Tensor]:
    """Everything the stage shows for one head's Q and K (T, d), each recorded where it is made.

    θ and the angles are computed in float64 whatever Q's dtype and kept in Q's dtype: in
    float32, m·θ_0 = m radians carries an error of about m × 6e-8, 0.06 rad at m = 10⁶, which
    would break the shifted-positions check for large shifts (the book's code uses float32)."""
    ops = Ops()
    record = ops.record
    record("queries", Q)
    record("keys", K)
    T, d = Q.shape
    positions = torch.arange(T, device=Q.device)
    theta = record("theta", inv_freq(d, base, Q.device))                   # (d/2,): base^(−2i/d), in float64
    angles = record("angles", angles_at(positions, theta))                 # (T, 1) * (1, d/2) -> (T, d/2): m·θ_i
    q_pairs = record("q_pairs", to_pairs(Q, form))                         # (T, d) -> (T, d/2, 2)
    q_pairs_rot = record("q_pairs_rot", rotate(q_pairs, angles))           # (T, d/2, 2): pair i of token m turned by m·θ_i
    k_pairs = record("k_pairs", to_pairs(K, form))                         # (T, d) -> (T, d/2, 2)
    k_pairs_rot = record("k_pairs_rot", rotate(k_pairs, angles))           # (T, d/2, 2)
    # (T, d/2, 2) -> (T, d); the split form is the book's Q * cat([cos, cos], -1) + rotate_half(Q) * cat([sin, sin], -1)
    Q_rope = record("queries_rot", from_pairs(q_pairs_rot, form))
    K_rope = record("keys_rot", from_pairs(k_pairs_rot, form))             # (T, d/2, 2) -> (T, d)
    record("scores", Q @ K.T)                                              # (T, d) @ (d, T) -> (T, T): no positions
    scores_rope = record("scores_rope", Q_rope @ K_rope.T)                 # (T, T)
    angles_s = angles_at(positions + shift, theta)                         # (T, d/2): every position moved by s
    scores_shifted = record("scores_shifted", rope(Q, angles_s, form) @ rope(K, angles_s, form).T)   # (T, T)
    record("shift_check", (scores_shifted - scores_rope).abs().max().reshape(1))   # (1,): m − n only: 0 up to rounding
    perm = other_order(d, form, device=Q.device)                           # (d,)
    record("permutation", perm.to(Q.dtype))
    alt, back = other(form), perm.argsort()
    Q_rope_other = record("queries_rot_other", rope(Q[:, perm], angles, alt)[:, back])   # (T, d) in this form's order
    K_rope_other = record("keys_rot_other", rope(K[:, perm], angles, alt)[:, back])
    record("scores_unpermuted", rope(Q, angles, alt) @ rope(K, angles, alt).T)   # (T, T): no permutation, other pairs
    record("form_check", torch.maximum((Q_rope_other - Q_rope).abs().max(),
                                       (K_rope_other - K_rope).abs().max()).reshape(1))   # (1,)
    return {**ops.named, "theta": theta.to(Q.dtype), "angles": angles.to(Q.dtype)}      # kept in Q's dtype


# ---- the code panel ------------------------------------------------------------------------

def code(cfg) -> list[tuple[str | None, str]]:
    """The lines for ``cfg`` (a core.tiled_config.RopeConfig): ``rope_stage``'s own (core.stages.lines
    reads them), the options written in, each helper's ``def`` just before its first use."""
    given = {"queries": [("queries", f"Q = queries[{cfg.head}]  # (h, T, hd) -> (T, hd): head {cfg.head} of the multi-head stage")],
             "keys": [("keys", f"K = keys[{cfg.head}]")]}
    values = {"base": repr(float(cfg.base)), "form": repr(cfg.form), "shift": str(cfg.shift), "Q.device": None}
    c = lines(rope_stage, given, values)
    for fn in (to_pairs, rotate, from_pairs, rope, other_order):
        at = next(k for k, (_, line) in enumerate(c) if f"{fn.__name__}(" in line.split(" = ", 1)[-1])
        c[at:at] = definition(fn)
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
