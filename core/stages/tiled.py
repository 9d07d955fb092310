"""Beyond chapter 3: attention computed tile by tile, as FlashAttention's kernel does it.

The chapter computes the whole T × T score matrix, masks it, softmaxes it and multiplies by V.
A fused kernel never stores that matrix: it walks over tiles of Br queries × Bc keys, keeps per
query row only a running maximum m, a running sum l of exponentials and an output accumulator
O, and rescales what it has so far by exp(m_old − m_new) whenever a tile raises the maximum
(the online softmax). At the end O / l is exactly softmax(QKᵀ/√d)V.

Two forms (Dao et al., 2022, Algorithm 1; Dao, 2023, FlashAttention-2, Algorithm 1):

- FlashAttention (``fa2=False``): key blocks outermost, query blocks inside; O is kept
  *normalised* after every tile: O ← diag(l_new)⁻¹ (diag(l_old) e^{m_old − m_new} O + e^{m̃ − m_new} P̃ V_j)
  with P̃ = exp(S − m̃), m̃ the tile's own row maximum;
- FlashAttention-2 (``fa2=True``): query blocks outermost, key blocks inside; O is the
  *unscaled* accumulator O ← diag(e^{m_old − m_new}) O + P V_j with P = exp(S − m_new), divided
  by l once at the end.

Both keep the log-sum-exp L = m + log l for the backward pass. Causal: a tile whose every key
comes after every query (wholly above the diagonal) is skipped; a tile that the diagonal
crosses is masked inside. Block sizes need not divide T: the last blocks are shorter.

Every step is a pure function: tensors in, new tensors out (nothing changed in place).
"""
from __future__ import annotations

import math

import torch

from core.stages.causal import attention_weights, causal_mask
from core.stages.lines import lines
from core.stages.ops import Ops
from core.stages.schema import Stage, term

# ---- the vocabulary ----------------------------------------------------------------------
# "token"/"query"/"key" = the prompt's tokens (a tile's rows and columns: its block's tokens),
# "hd" = head_dim, "tile" = every tile in the kernel's order, "field" = a table's columns,
# "method" = standard vs tiled, "one" = a single number.

TILE_FIELDS = ("step", "query block", "key block", "first query", "last query", "first key", "last key",
               "diagonal")
TABLE_FIELDS = ("query block", "key block", "first query", "last query", "first key", "last key", "visited",
                "diagonal", "step")
IO_FIELDS = ("reads", "writes", "total", "bytes")
IO_METHODS = ("standard", "tiled")

INPUT_TERMS = {
    "queries": term("Q", "(X W_q).view(T, h, hd)[:, head]", "the chosen head's queries (the multi-head stage's)",
                    "token", "hd"),
    "keys": term("K", "(X W_k).view(T, h, hd)[:, head]", "the chosen head's keys", "token", "hd"),
    "values": term("V", "(X W_v).view(T, h, hd)[:, head]", "the chosen head's values", "token", "hd"),
}

TERMS = {
    "tile": term("(i, j)", "step, query block i, key block j, rows, columns",
                 "which tile this step visits: its place in the kernel's order, its query and key blocks "
                 "(first/last token, counted from 0) and whether the diagonal crosses it (1: masked inside)", "field"),
    "q_block": term("Q_i", "Q[i·Br : (i+1)·Br]", "the tile's queries, loaded from HBM to on-chip memory",
                    "query", "hd"),
    "k_block": term("K_j", "K[j·Bc : (j+1)·Bc]", "the tile's keys", "key", "hd"),
    "v_block": term("V_j", "V[j·Bc : (j+1)·Bc]", "the tile's values", "key", "hd"),
    "scores": term("S_ij", "S_ij = Q_i K_jᵀ / √d  (−∞ above the diagonal)",
                   "the tile's scores, already scaled by 1/√d; causal: −∞ where the key comes after the query",
                   "query", "key"),
    "m_tile": term("m̃_ij", "rowmax(S_ij)", "the tile's own row maximum (−∞ for a row the tile hides entirely)",
                   "query"),
    "m_before": term("m_old", "m_i before the tile", "the running row maximum over the keys seen so far "
                     "(−∞ before the first tile)", "query"),
    "m_after": term("m_new", "max(m_old, m̃_ij)", "the running row maximum including this tile", "query"),
    "rescale": term("α", "exp(m_old − m_new)", "how much what was accumulated so far shrinks because the "
                    "maximum grew (1: it did not; 0 on the first tile)", "query"),
    "tile_scale": term("β", "exp(m̃_ij − m_new)", "FlashAttention: the same for the tile's own P̃ (computed "
                       "against its own maximum)", "query", optional=True),
    "probs": term("P_ij", "FA2: exp(S_ij − m_new);  FA1: P̃ = exp(S_ij − m̃_ij)",
                  "the tile's unnormalised softmax numerators (0 where masked)", "query", "key"),
    "l_tile": term("l̃_ij", "rowsum(P_ij)", "the tile's sum of exponentials", "query"),
    "l_before": term("l_old", "l_i before the tile", "the running sum of exponentials (relative to m_old)", "query"),
    "l_after": term("l_new", "FA2: α l_old + l̃;  FA1: α l_old + β l̃",
                    "the running sum including this tile (relative to m_new)", "query"),
    "O_before": term("O_old", "O_i before the tile", "the output accumulator before the tile (0 at first)",
                     "query", "hd"),
    "O_after": term("O_new", "FA2: diag(α) O_old + P V_j;  FA1: diag(l_new)⁻¹(diag(α l_old) O_old + β P̃ V_j)",
                    "the output accumulator after the tile (FA2: unscaled, FA1: normalised)", "query", "hd"),
}

RESULT_TERMS = {
    "tiles": term("tiles", "every (query block, key block) in the kernel's order",
                  "the tile grid: visited (1) or skipped (0: causal, wholly above the diagonal), crossed by the "
                  "diagonal (1), and the step that visited it (−1: skipped)", "tile", "field"),
    "m": term("m", "the running maximum after the last tile", "each row's maximum score", "query"),
    "l": term("l", "the running sum after the last tile", "each row's Σ exp(s − m)", "query"),
    "output": term("O", "FA2: O / l;  FA1: O", "the tiled result", "token", "hd"),
    "lse": term("L", "L = m + log l", "the log-sum-exp of each row, what the backward pass keeps instead of "
                "the T × T weights", "query"),
    "reference": term("Z", "softmax(mask(QKᵀ) / √d) V", "ordinary attention, the chapter's way (the whole T × T "
                      "matrix)", "token", "hd"),
    "check": term("max|Δ|", "max |O − Z|", "the tiled result against ordinary attention", "one"),
    "lse_check": term("max|ΔL|", "max |L − logsumexp(QKᵀ/√d)|", "the kept log-sum-exp against the full rows",
                      "one"),
    "io": term("HBM", "elements read and written to global memory (core.flash_io)",
               "this T, d and block sizes: standard attention vs the tiled kernel", "method", "field"),
}


# ---- the grid ------------------------------------------------------------------------------

def blocks(T: int, B: int) -> list[tuple[int, int]]:
    """The [start, stop) of each block of B tokens; the last one is shorter when B does not divide T."""
    return [(s, min(s + B, T)) for s in range(0, T, B)]


def skipped(q: tuple[int, int], k: tuple[int, int], causal: bool) -> bool:
    """Causal: the tile is wholly above the diagonal (its first key comes after its last query)."""
    return causal and k[0] > q[1] - 1


def crossed(q: tuple[int, int], k: tuple[int, int], causal: bool) -> bool:
    """Causal: the diagonal passes through the tile (some key comes after some query), not skipped."""
    return causal and not skipped(q, k, causal) and k[1] - 1 > q[0]


def kernel_order(T: int, Br: int, Bc: int, fa2: bool) -> list[tuple[int, int]]:
    """(query block i, key block j) in the order the kernel visits them (skipped ones included):
    FlashAttention: for j (outer) for i (inner); FlashAttention-2: for i (outer) for j (inner)."""
    nr, nc = len(blocks(T, Br)), len(blocks(T, Bc))
    if fa2:
        return [(i, j) for i in range(nr) for j in range(nc)]
    return [(i, j) for j in range(nc) for i in range(nr)]


# ---- one tile ------------------------------------------------------------------------------

def tile_scores(q_block: torch.Tensor, k_block: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor,
                causal: bool) -> torch.Tensor:
    """S_ij = Q_i K_jᵀ / √d, −∞ where (causal) the key comes after the query. (Br, d), (Bc, d) -> (Br, Bc)."""
    S = (q_block @ k_block.T) / math.sqrt(q_block.shape[-1])             # (Br, d) @ (d, Bc) -> (Br, Bc)
    if causal:
        above = k_pos.unsqueeze(0) > q_pos.unsqueeze(1)                    # (1, Bc) > (Br, 1) -> (Br, Bc)
        S = S.masked_fill(above, -torch.inf)                               # a new tensor
    return S


def fa1_step(S: torch.Tensor, v_block: torch.Tensor, m_old: torch.Tensor, l_old: torch.Tensor,
             O_old: torch.Tensor) -> dict[str, torch.Tensor]:
    """Algorithm 1 (FlashAttention), lines 9–13, for one tile: O stays normalised."""
    ops = Ops()
    record = ops.record
    record("m_before", m_old)
    record("l_before", l_old)
    record("O_before", O_old)
    m_tile = record("m_tile", S.amax(dim=-1))                              # (Br, Bc) -> (Br,)
    # a row the tile hides entirely has m̃ = −∞: subtract 0 instead (its P̃ is 0 either way, not nan)
    m_safe = torch.where(torch.isinf(m_tile), torch.zeros_like(m_tile), m_tile)
    P = record("probs", torch.exp(S - m_safe.unsqueeze(-1)))               # (Br, Bc) - (Br, 1) -> (Br, Bc): P̃
    l_tile = record("l_tile", P.sum(dim=-1))                               # (Br,)
    m_new = record("m_after", torch.maximum(m_old, m_tile))                # (Br,)
    alpha = record("rescale", torch.exp(m_old - m_new))                    # (Br,): 0 where m_old = −∞
    beta = record("tile_scale", torch.exp(m_tile - m_new))                 # (Br,): 0 where the tile hides the row
    l_new = record("l_after", alpha * l_old + beta * l_tile)               # (Br,)
    # (Br, 1) * (Br, d) + (Br, 1) * ((Br, Bc) @ (Bc, d)) -> (Br, d), then / (Br, 1)
    O_new = record("O_after", ((l_old * alpha).unsqueeze(-1) * O_old + beta.unsqueeze(-1) * (P @ v_block))
                   / l_new.unsqueeze(-1))
    return ops.named


def fa2_step(S: torch.Tensor, v_block: torch.Tensor, m_old: torch.Tensor, l_old: torch.Tensor,
             O_old: torch.Tensor) -> dict[str, torch.Tensor]:
    """FlashAttention-2, Algorithm 1, lines 8–10, for one tile: O is the unscaled accumulator."""
    ops = Ops()
    record = ops.record
    record("m_before", m_old)
    record("l_before", l_old)
    record("O_before", O_old)
    m_tile = record("m_tile", S.amax(dim=-1))                              # (Br, Bc) -> (Br,)
    m_new = record("m_after", torch.maximum(m_old, m_tile))                # (Br,)
    P = record("probs", torch.exp(S - m_new.unsqueeze(-1)))                # (Br, Bc) - (Br, 1) -> (Br, Bc)
    alpha = record("rescale", torch.exp(m_old - m_new))                    # (Br,): 0 where m_old = −∞
    l_tile = record("l_tile", P.sum(dim=-1))                               # (Br,)
    l_new = record("l_after", alpha * l_old + l_tile)                      # (Br,)
    O_new = record("O_after", alpha.unsqueeze(-1) * O_old + P @ v_block)   # (Br, 1) * (Br, d) + (Br, Bc) @ (Bc, d) -> (Br, d)
    return ops.named


def put(full: torch.Tensor, start: int, stop: int, rows: torch.Tensor) -> torch.Tensor:
    """A new tensor: ``full`` with rows start…stop − 1 replaced (what the kernel writes back to HBM)."""
    return torch.cat([full[:start], rows, full[stop:]], dim=0)             # (start,…) + (stop − start,…) + (T − stop,…) -> (T,…)


def finish(O: torch.Tensor, l: torch.Tensor, m: torch.Tensor, fa2: bool) -> dict[str, torch.Tensor]:
    """After the last tile: FA2 divides the accumulator by l (FA1's O is already normalised);
    both keep L = m + log l."""
    output = O / l.unsqueeze(-1) if fa2 else O                             # (T, d) / (T, 1) -> (T, d)
    return {"m": m, "l": l, "output": output, "lse": m + torch.log(l)}


def flash_attention(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, Br: int, Bc: int, causal: bool,
                    fa2: bool) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Every visited tile's intermediates in the kernel's order, and the result (with ``tiles``,
    the grid: one row per tile in the kernel's order, visited or skipped)."""
    T, d = Q.shape
    rows, cols = blocks(T, Br), blocks(T, Bc)
    positions = torch.arange(T, device=Q.device)
    m = torch.full((T,), -torch.inf, dtype=Q.dtype, device=Q.device)     # initialised in HBM
    l = torch.zeros(T, dtype=Q.dtype, device=Q.device)
    O = torch.zeros(T, d, dtype=Q.dtype, device=Q.device)
    steps, table = [], []
    for i, j in kernel_order(T, Br, Bc, fa2):
        (q0, q1), (k0, k1) = rows[i], cols[j]
        diagonal = crossed(rows[i], cols[j], causal)
        if skipped(rows[i], cols[j], causal):
            table.append([i, j, q0, q1 - 1, k0, k1 - 1, 0, 0, -1])
            continue
        table.append([i, j, q0, q1 - 1, k0, k1 - 1, 1, int(diagonal), len(steps)])
        q_block, k_block, v_block = Q[q0:q1], K[k0:k1], V[k0:k1]           # (Br, d), (Bc, d), (Bc, d)
        S = tile_scores(q_block, k_block, positions[q0:q1], positions[k0:k1], causal)
        step = (fa2_step if fa2 else fa1_step)(S, v_block, m[q0:q1], l[q0:q1], O[q0:q1])
        m, l, O = put(m, q0, q1, step["m_after"]), put(l, q0, q1, step["l_after"]), put(O, q0, q1, step["O_after"])
        tile = torch.tensor([len(steps), i, j, q0, q1 - 1, k0, k1 - 1, int(diagonal)], dtype=Q.dtype,
                            device=Q.device)
        steps.append({"tile": tile, "q_block": q_block, "k_block": k_block, "v_block": v_block, "scores": S, **step})
    result = finish(O, l, m, fa2)
    result["tiles"] = torch.tensor(table, dtype=Q.dtype, device=Q.device).reshape(len(table), len(TABLE_FIELDS))   # (tiles, fields)
    return steps, result


def reference(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, causal: bool) -> dict[str, torch.Tensor]:
    """The chapter's attention on one head (core.stages.causal.attention_weights): the whole
    T × T matrix, masked, softmaxed, times V; and each row's log-sum-exp."""
    ops = Ops()
    weights = attention_weights(Q, K, causal_mask(Q.shape[0], causal, device=Q.device, dtype=Q.dtype), ops)  # (T, T)
    scaled = ops.named["masked_scores"] / math.sqrt(K.shape[-1])            # (T, T)
    return {"reference": weights @ V, "reference_lse": torch.logsumexp(scaled, dim=-1)}   # (T, d), (T,)


# ---- the code panel ------------------------------------------------------------------------

def code(cfg) -> list[tuple[str | None, str]]:
    """The minimal kernel loop in plain torch for ``cfg`` (a core.tiled_config.TiledConfig),
    each line tagged by the intermediate it makes."""
    Br, Bc, d = cfg.block_rows, cfg.block_cols, cfg.head_dim
    skip = [(None, "        if j > i + Br - 1: continue  # causal: wholly above the diagonal, skipped")] if cfg.causal else []
    mask = ([("scores", "S = S.masked_fill(torch.arange(j, j + len(K_j)) > torch.arange(i, i + len(Q_i))[:, None], -torch.inf)")]
            if cfg.causal else [])
    head = [(None, "import math, torch"),
            ("queries", f"Q = queries[{cfg.head}]  # (h, T, hd) -> (T, hd): head {cfg.head} of the multi-head stage"),
            ("keys", f"K = keys[{cfg.head}]"),
            ("values", f"V = values[{cfg.head}]"),
            (None, f"T, d, Br, Bc = Q.shape[0], {d}, {Br}, {Bc}"),
            (None, "m = torch.full((T,), -torch.inf)  # running row maximum, in HBM"),
            (None, "l = torch.zeros(T)                # running sum of exponentials"),
            (None, "O = torch.zeros(T, d)             # output accumulator")]
    load_q = [("q_block", "Q_i = Q[i:i + Br]  # (Br, d), the last block may be shorter")]
    load_kv = [("k_block", "K_j = K[j:j + Bc]  # (Bc, d)"), ("v_block", "V_j = V[j:j + Bc]")]
    body = [("tile", "# tile (i // Br, j // Bc)"),
            ("scores", "S = Q_i @ K_j.T / math.sqrt(d)  # (Br, d) @ (d, Bc) -> (Br, Bc), scaled")]
    body += mask
    # the tile's steps: fa1_step's or fa2_step's own lines (core.stages.lines), the running
    # values read from HBM where the step records them
    given = {"m_before": [("m_before", "m_old, l_old, O_old = m[i:i + Br], l[i:i + Br], O[i:i + Br]")],
             "l_before": [("l_before", "# l_old: the running sum so far")],
             "O_before": [("O_before", "# O_old: the unscaled accumulator so far" if cfg.fa2 else "# O_old: normalised so far")]}
    body += lines(fa2_step if cfg.fa2 else fa1_step, given, {"v_block": "V_j"})
    body += [(None, "m[i:i + Br], l[i:i + Br], O[i:i + Br] = m_new, l_new, O_new  # written back to HBM")]
    if cfg.fa2:
        loop = ([(None, "for i in range(0, T, Br):  # query blocks outermost (FlashAttention-2)")]
                + [(n, "    " + line) for n, line in load_q]
                + [(None, "    for j in range(0, T, Bc):  # key blocks inside")] + skip
                + [(n, "        " + line) for n, line in load_kv])
        tail = [("output", "O = O / l[:, None]  # once, at the end"),
                ("m", "# m: each row's maximum"), ("l", "# l: each row's sum")]
    else:
        loop = ([(None, "for j in range(0, T, Bc):  # key blocks outermost (FlashAttention)")]
                + [(n, "    " + line) for n, line in load_kv]
                + [(None, "    for i in range(0, T, Br):  # query blocks inside")] + skip
                + [(n, "        " + line) for n, line in load_q])
        tail = [("output", "# O is already normalised"), ("m", "# m: each row's maximum"), ("l", "# l: each row's sum")]
    body = [(n, "        " + line) for n, line in body]                  # inside both loops
    causal = ".masked_fill(torch.ones(T, T).triu(1).bool(), -torch.inf)" if cfg.causal else ""
    tail += [("lse", "L = m + torch.log(l)  # kept for the backward pass"),
             ("lse_check", "lse_check = (L - torch.logsumexp(S_full / math.sqrt(d), dim=-1)).abs().max()"),
             ("reference", f"reference = torch.softmax((Q @ K.T){causal} / math.sqrt(d), dim=-1) @ V"),
             ("check", "check = (O - reference).abs().max()"),
             ("tiles", "# tiles: every (i, j) in this order, visited or skipped"),
             ("io", "# io: core.flash_io.standard_io(T, d) vs flash_io(T, d, Br, Bc)")]
    return head + loop + body + tail


# ---- the inspector -------------------------------------------------------------------------

def explain(c):
    """The arithmetic of a clicked cell of a tile step (``tiled_step007``) or the result;
    ``c`` is a core.provenance.Cell. None: the inspector shows the value."""
    name, S, cfg = c.name, c.stage, c.cfg
    fa2 = cfg.fa2
    if S.startswith("tiled_step"):
        rows = c.trace.stages[S]["q_block"].labels[0]
        keys = c.trace.stages[S]["k_block"].labels[0]
        r = c.i if c.i is not None else c.j                # the query row (1-D terms: the column index)
        row = rows[r] if c.item.axes[0] == "query" else ""
        get = (lambda n: c.get(S, n))
        if name == "scores":
            q, k = get("q_block")[c.i], get("k_block")[c.j]
            products, total, lines = c.dot(q, k, f"q_{rows[c.i]}", f"k_{keys[c.j]}", ("dims",))
            if float(c.value) == float("-inf"):
                return c.done("mask", f"S[{rows[c.i]}, {keys[c.j]}] = −∞",
                              ["causal: this key comes after the query (the diagonal crosses the tile)"], float("-inf"))
            value = total / math.sqrt(cfg.head_dim)
            return c.done("dot", f"S[{rows[c.i]}, {keys[c.j]}] = q · k / √{cfg.head_dim}",
                          lines + (f"/ √{cfg.head_dim} = {c.f(value)}",), value,
                          [c.source(S, "q_block", (), (c.i,), None), c.source(S, "k_block", (), (c.j,), None)], products)
        if name == "m_tile":
            s = get("scores")[r]
            return c.done("max", f"m̃[{row}] = max over the tile's keys of S[{row}, :]",
                          [f"S[{row}, :] = [{', '.join(c.f(v) for v in s[:8])}{', …' if len(s) > 8 else ''}]"],
                          float(s.max()), [c.source(S, "scores", (), (r,), None)])
        if name == "m_after":
            a, b = float(get("m_before")[r]), float(get("m_tile")[r])
            return c.done("max", f"m_new[{row}] = max(m_old, m̃) = max({c.f(a)}, {c.f(b)})",
                          ["the maximum grew: what was accumulated is rescaled" if b > a else
                           "the maximum did not grow: α = 1"], max(a, b),
                          [c.source(S, "m_before", (), None, (r,)), c.source(S, "m_tile", (), None, (r,))])
        if name in ("rescale", "tile_scale"):
            old = float(get("m_before" if name == "rescale" else "m_tile")[r])
            new = float(get("m_after")[r])
            value = math.exp(old - new) if math.isfinite(old) else 0.0
            what = "m_old" if name == "rescale" else "m̃"
            return c.done("exp", f"{'α' if name == 'rescale' else 'β'}[{row}] = exp({what} − m_new) = "
                                 f"exp({c.f(old)} − {c.f(new)})",
                          ["m_old = −∞ (the row's first tile): nothing to rescale" if not math.isfinite(old)
                           else f"= exp({c.f(old - new)}) = {c.f(value)}"], value,
                          [c.source(S, "m_before" if name == "rescale" else "m_tile", (), None, (r,)),
                           c.source(S, "m_after", (), None, (r,))])
        if name == "probs":
            s = float(get("scores")[c.i, c.j])
            ref = "m_after" if fa2 else "m_tile"
            m = float(get(ref)[c.i])
            m = 0.0 if not math.isfinite(m) else m
            value = math.exp(s - m) if math.isfinite(s) else 0.0
            return c.done("exp", f"P[{rows[c.i]}, {keys[c.j]}] = exp(S − {'m_new' if fa2 else 'm̃'}) = "
                                 f"exp({c.f(s)} − {c.f(m)})", [f"= {c.f(value)}"], value,
                          [c.source(S, "scores", (), (c.i,), (c.j,)), c.source(S, ref, (), None, (c.i,))])
        if name == "l_tile":
            p = get("probs")[r]
            return c.done("sum", f"l̃[{row}] = Σ P[{row}, :]", [f"sum of {len(p)} = {c.f(c.sum(p))}"], c.sum(p),
                          [c.source(S, "probs", (), (r,), None)])
        if name == "l_after":
            a, lo, lt = float(get("rescale")[r]), float(get("l_before")[r]), float(get("l_tile")[r])
            b = float(get("tile_scale")[r]) if not fa2 else 1.0
            value = a * lo + b * lt
            formula = (f"l_new[{row}] = α l_old + l̃ = {c.f(a)}×{c.f(lo)} + {c.f(lt)}" if fa2 else
                       f"l_new[{row}] = α l_old + β l̃ = {c.f(a)}×{c.f(lo)} + {c.f(b)}×{c.f(lt)}")
            return c.done("sum", formula, [f"= {c.f(value)}"], value,
                          [c.source(S, "l_before", (), None, (r,)), c.source(S, "l_tile", (), None, (r,))])
        if name == "O_after":
            a, o = float(get("rescale")[c.i]), float(get("O_before")[c.i, c.j])
            p, v = get("probs")[c.i], get("v_block")[:, c.j]
            products, pv, lines = c.dot(p, v, f"P[{rows[c.i]}, :]", f"V_j[:, d{c.j}]", ("keys",))
            if fa2:
                value = a * o + pv
                formula = f"O_new[{rows[c.i]}, d{c.j}] = α O_old + P V_j = {c.f(a)}×{c.f(o)} + {c.f(pv)}"
            else:
                lo, ln, b = float(get("l_before")[c.i]), float(get("l_after")[c.i]), float(get("tile_scale")[c.i])
                value = (a * lo * o + b * pv) / ln
                formula = (f"O_new[{rows[c.i]}, d{c.j}] = (α l_old O_old + β P̃V_j) / l_new = "
                           f"({c.f(a)}×{c.f(lo)}×{c.f(o)} + {c.f(b)}×{c.f(pv)}) / {c.f(ln)}")
            return c.done("dot", formula, tuple(lines) + (f"= {c.f(value)}",), value,
                          [c.source(S, "probs", (), (c.i,), None), c.source(S, "v_block", (), None, (c.j,)),
                           c.source(S, "O_before", (), (c.i,), (c.j,))], products)
        if name == "tile":
            return c.done("given", f"{TILE_FIELDS[c.j]} = {int(c.value)}",
                          ["tiles are visited " + ("query block outermost (FlashAttention-2)" if fa2 else
                                                   "key block outermost (FlashAttention, Algorithm 1)")], c.value)
        return None
    if S == "tiled_result":
        tok = c.trace.labels
        if name == "output" and fa2:
            step_O, l = _last_accumulator(c, c.i), float(c.get(S, "l")[c.i])
            value = step_O[c.j] / l
            return c.done("ratio", f"O[{tok[c.i]}, d{c.j}] = O_acc / l = {c.f(step_O[c.j])} / {c.f(l)}",
                          [f"= {c.f(value)}", "FlashAttention-2 divides by l once, after the last tile"], value,
                          [c.source(S, "l", (), None, (c.i,))])
        if name == "lse":
            m, l = float(c.get(S, "m")[c.j]), float(c.get(S, "l")[c.j])
            value = m + math.log(l)
            return c.done("sum", f"L[{tok[c.j]}] = m + log l = {c.f(m)} + log {c.f(l)}",
                          [f"= {c.f(value)}", "the backward pass recomputes P = exp(S − L) tile by tile from it"],
                          value, [c.source(S, "m", (), None, (c.j,)), c.source(S, "l", (), None, (c.j,))])
        if name == "check":
            return c.done("check", f"max |O − Z| = {c.value:.3g}",
                          ["the tiled result against ordinary softmax(QKᵀ/√d)V over the whole matrix",
                           "equal up to float rounding: the online softmax is exact arithmetic reordered"], c.value,
                          [c.source(S, "output", (), None, None), c.source(S, "reference", (), None, None)])
    return None


def _last_accumulator(c, row: int):
    """The unscaled accumulator row after the last tile that wrote ``row`` (its O_after)."""
    last = None
    for name, stage in c.trace.stages.items():
        if not name.startswith("tiled_step"):
            continue
        tile = stage["tile"].numpy()
        if tile[3] <= row <= tile[4]:
            last = stage["O_after"].numpy()[row - int(tile[3])]
    return last


STAGE = Stage("tiled", "Tiled attention (FlashAttention's online softmax)", "beyond ch03", TERMS,
              flash_attention, code, explain, external=True)
