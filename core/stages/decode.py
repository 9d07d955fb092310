"""Beyond chapter 3: generating token by token with a KV cache, and the attention variants of
today's models (the book's ch04 bonus classes).

A prompt is processed once (prefill: full causal attention, the cache filled); then tokens come
one at a time and each new token's query reads the keys and values kept from before instead of
recomputing them. One forward per family, written as the book's classes write it:

- ``kv_step``: MultiHeadAttention with a KV cache (num_kv_groups = num_heads),
  GroupedQueryAttention (num_kv_groups K/V heads, each shared by num_heads // num_kv_groups query
  heads through ``repeat_interleave``), multi-query attention (num_kv_groups = 1), and
  MultiHeadAttentionWithSWA (a band mask of width sliding_window_size; the cache is a ring
  buffer of that many slots);
- ``mla_step``: MultiHeadLatentAttention: what is cached is the compressed latent
  c_kv = x W_DKV (latent_dim per token), up-projected to keys (W_UK) and values (W_UV) when read.

Each records every tensor where it makes it (core/stages/ops.py), and the code panel's step
lines are its own (core/stages/lines.py). ``forward`` is a pure function: the tensors in, the
named intermediates and a *new* ``Cache`` out (the book keeps ``cache_k``/``ptr_current_pos`` on
the module and mutates them). With an
empty cache and all tokens at once the same call is the uncached forward (``use_cache=False``):
what the check recomputes. One sequence, no batch axis, eval mode (no dropout).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.stages.causal import attention_weights
from core.stages.lines import lines
from core.stages.ops import Ops, project
from core.stages.schema import Stage, term
from core.weights import Projection

VARIANTS = ("mha", "gqa", "mqa", "mla", "swa")
VARIANT_TITLES = {
    "mha": "multi-head attention (the chapter's, with a KV cache)",
    "gqa": "grouped-query attention (GroupedQueryAttention)",
    "mqa": "multi-query attention (one K/V head)",
    "mla": "multi-head latent attention (MultiHeadLatentAttention)",
    "swa": "sliding-window attention (MultiHeadAttentionWithSWA)",
}

# ---- the vocabulary ----------------------------------------------------------------------
# Axis kinds (core.stages.schema.AXIS_KINDS): "head" = num_heads, "group" = num_kv_groups (the
# K/V heads), "hd" = head_dim, "in" = d_in, "out" = d_out, "kv" = num_kv_groups · head_dim,
# "latent" = latent_dim, "token"/"query" = the prompt's tokens, "key" = the keys a query reads
# (labelled by their tokens), "new" = the one new token, "pos" = every position so far,
# "slot" = the sliding window's ring-buffer slots, "one" = a single number.

WEIGHT_TERMS = {
    "W_query": term("W_q", "W_q = W_query.weight.T", "query projection, all heads side by side", "in", "out"),
    "b_query": term("b_q", "b_q", "query bias", "out", optional=True),
    "W_key": term("W_k", "W_k = W_key.weight.T", "key projection: num_kv_groups K/V heads side by side",
                  "in", "kv", optional=True),
    "b_key": term("b_k", "b_k", "key bias", "kv", optional=True),
    "W_value": term("W_v", "W_v = W_value.weight.T", "value projection: num_kv_groups K/V heads side by side",
                    "in", "kv", optional=True),
    "b_value": term("b_v", "b_v", "value bias", "kv", optional=True),
    "W_DKV": term("W_DKV", "W_DKV = W_DKV.weight.T", "MLA: down-projection of a token to its latent c_kv",
                  "in", "latent", optional=True),
    "b_DKV": term("b_DKV", "b_DKV", "MLA: down-projection bias", "latent", optional=True),
    "W_UK": term("W_UK", "W_UK = W_UK.weight.T", "MLA: up-projection of the latent to every head's keys",
                 "latent", "out", optional=True),
    "b_UK": term("b_UK", "b_UK", "MLA: key up-projection bias", "out", optional=True),
    "W_UV": term("W_UV", "W_UV = W_UV.weight.T", "MLA: up-projection of the latent to every head's values",
                 "latent", "out", optional=True),
    "b_UV": term("b_UV", "b_UV", "MLA: value up-projection bias", "out", optional=True),
    "W_out": term("W_o", "W_o = out_proj.weight.T", "output projection", "out", "out"),
    "b_out": term("b_o", "b_o = out_proj.bias",
                  "output bias (the book's GroupedQueryAttention has none: gqa and mqa leave it out)",
                  "out", optional=True),
}

# What one call computes, prefill (T prompt tokens) or a step (one new token). The axes are a
# step's; the prefill's have "token"/"query" where a step has "new" (``PREFILL_AXES``).
TERMS = {
    "position": term("ptr", "ptr_current_pos", "the position pointer: the index of the new token "
                     "(the number of tokens before it)", "one"),
    "x_new": term("x_new", "x_new = embedding of the new token",
                  "the new token's embedding (drawn as the app draws inputs, seeded)", "new", "in"),
    "queries": term("q⁽ʰ⁾", "(x W_q).view(n, h, hd).transpose", "the new token's query, per head",
                    "head", "new", "hd"),
    "keys_new": term("k_new⁽ᵍ⁾", "(x W_k).view(n, g, hd).transpose",
                     "the new token's key, per K/V head (appended to the cache)", "group", "new", "hd", optional=True),
    "values_new": term("v_new⁽ᵍ⁾", "(x W_v).view(n, g, hd).transpose",
                       "the new token's value, per K/V head (appended to the cache)", "group", "new", "hd",
                       optional=True),
    "latent_new": term("c_new", "c_new = x W_DKV", "MLA: the new token's compressed latent (appended to the cache)",
                       "new", "latent", optional=True),
    "cache_k": term("K_cache⁽ᵍ⁾", "cache_k = cat([cache_k, k_new], dim=1)",
                    "the key cache after this token: one row per token so far, per K/V head", "group", "key", "hd",
                    optional=True),
    "cache_v": term("V_cache⁽ᵍ⁾", "cache_v = cat([cache_v, v_new], dim=1)",
                    "the value cache after this token: one row per token so far, per K/V head", "group", "key", "hd",
                    optional=True),
    "cache_c_kv": term("C_cache", "cache_c_kv = cat([cache_c_kv, c_new])",
                       "MLA: the latent cache after this token, what MLA keeps instead of K and V", "key", "latent",
                       optional=True),
    "ring_k": term("K_ring⁽ᵍ⁾", "ring_k[:, pos % W] = k_new",
                   "SWA: the key cache as a ring buffer of W slots; position p is written to slot p % W",
                   "group", "slot", "hd", optional=True),
    "ring_v": term("V_ring⁽ᵍ⁾", "ring_v[:, pos % W] = v_new", "SWA: the value ring buffer", "group", "slot", "hd",
                   optional=True),
    "ring_positions": term("pos(slot)", "ring_positions[pos % W] = pos",
                           "SWA: the position each ring slot holds (−1: still empty)", "slot", optional=True),
    "key_positions": term("pos(k)", "positions of the keys read",
                          "the absolute position of each key the new token's query reads", "key"),
    "keys": term("K⁽ʰ⁾", "cache_k.repeat_interleave(h // g, dim=0)  (MLA: C W_UK)",
                 "the keys each query head reads: its K/V head's cache (GQA: repeat_interleave; MLA: up-projected)",
                 "head", "key", "hd"),
    "values": term("V⁽ʰ⁾", "cache_v.repeat_interleave(h // g, dim=0)  (MLA: C W_UV)",
                   "the values each query head reads", "head", "key", "hd"),
    "band_row": term("band[ptr, :]", "0 ≤ ptr − j < W",
                     "SWA: row ptr of the full band mask over every position so far (1 = inside the window)",
                     "new", "pos", optional=True, colours="binary"),
    "mask": term("M[ptr, :]", "M = 0 ≤ q_pos − k_pos (< W)",
                 "the mask row for the new token's position, over the keys it reads (1 = may attend)", "new", "key",
                 colours="binary"),
    "attn_scores": term("ω⁽ʰ⁾", "q⁽ʰ⁾ K⁽ʰ⁾ᵀ", "the one new row of scores, per head", "head", "new", "key"),
    "masked_scores": term("ω⁽ʰ⁾_masked", "ω⁽ʰ⁾, −∞ where M = 0", "the new row of scores after the mask",
                          "head", "new", "key"),
    "attn_weights": term("A⁽ʰ⁾", "softmax(ω⁽ʰ⁾_masked / √hd)", "the new row of attention weights, per head",
                         "head", "new", "key", colours="prob"),
    "context_heads": term("z⁽ʰ⁾", "A⁽ʰ⁾ V⁽ʰ⁾", "the new token's context vector, per head", "head", "new", "hd"),
    "context_concat": term("z_cat", "z⁽ʰ⁾.transpose.reshape(n, d_out)", "the heads merged back side by side",
                           "new", "out"),
    "context_vecs": term("z", "z = z_cat W_o (+ b_o)", "the layer's output for the new token (cached path)",
                         "new", "out"),
    "recomputed": term("z_full", "forward(X, no cache)[ptr]",
                       "the same output recomputed without a cache: row ptr of one uncached pass, which "
                       "(causal) sees exactly the sequence so far", "new", "out"),
    "check": term("max|Δ|", "max |z − z_full|",
                  "the cached result against full causal attention over the sequence so far", "one"),
}
PREFILL_AXES = {"new": "token"}          # a prefill term's axes: "new" -> "token" ("query" in a score)

SUMMARY_TERMS = {
    "inputs": term("X", "X = prompt + new tokens", "every token's embedding, in order", "pos", "in"),
    "context_vecs": term("Z_cached", "prefill rows, then one row per step",
                         "the layer's outputs as generated with the cache", "pos", "out"),
    "recomputed": term("Z_full", "forward(X, no cache)", "the outputs of one uncached pass over the whole sequence",
                       "pos", "out"),
    "max_abs_diff": term("max|Δ|", "max over out of |Z_cached − Z_full|", "per position: cached against uncached",
                         "pos"),
}


def prefill_axes(name: str) -> tuple[str, ...]:
    """A term's axes in the prefill, where the rows are the prompt's tokens (queries × keys)."""
    axes = TERMS[name].axes
    if name in ("mask", "attn_scores", "masked_scores", "attn_weights", "band_row"):
        return tuple("query" if a == "new" else a for a in axes)
    return tuple(PREFILL_AXES.get(a, a) for a in axes)


# ---- the state carried from token to token -------------------------------------------------

@dataclass(frozen=True)
class Weights:
    """One layer's projections (W is d_in × d_out: nn.Linear's weight.T). kv variants use key and
    value; MLA uses DKV, UK and UV."""

    query: Projection
    out: Projection
    key: Projection | None = None
    value: Projection | None = None
    DKV: Projection | None = None
    UK: Projection | None = None
    UV: Projection | None = None

    def named(self) -> dict[str, torch.Tensor]:
        """The weights under their TERMS names (the biases only where there are some)."""
        out = {}
        for attr, name in (("query", "query"), ("key", "key"), ("value", "value"), ("DKV", "DKV"), ("UK", "UK"),
                           ("UV", "UV"), ("out", "out")):
            p = getattr(self, attr)
            if p is None:
                continue
            out[f"W_{name}"] = p.W
            if p.b is not None:
                out[f"b_{name}"] = p.b
        return out


@dataclass(frozen=True)
class Cache:
    """What the layer keeps between calls: the book's ``cache_k``/``cache_v`` buffers (MLA:
    ``cache_c_kv``) and ``ptr_current_pos``. Never changed in place: each call returns a new one."""

    k: torch.Tensor | None            # (num_kv_groups, n, head_dim); SWA: the ring (g, W, head_dim)
    v: torch.Tensor | None
    c_kv: torch.Tensor | None         # MLA: (n, latent_dim)
    positions: torch.Tensor           # (n,) the position of each cached row; SWA: of each slot, −1 = empty
    ptr_current_pos: int              # the position of the next token


def empty_cache(num_kv_groups: int, head_dim: int, latent_dim: int | None = None,
                sliding_window_size: int | None = None, device="cpu", dtype=torch.float32) -> Cache:
    """The cache before the prompt: no rows (SWA: W empty slots)."""
    if latent_dim is not None:
        return Cache(None, None, torch.zeros(0, latent_dim, device=device, dtype=dtype),
                     torch.zeros(0, dtype=torch.long, device=device), 0)
    slots = 0 if sliding_window_size is None else sliding_window_size
    k = torch.zeros(num_kv_groups, slots, head_dim, device=device, dtype=dtype)
    positions = torch.full((slots,), -1, dtype=torch.long, device=device)
    return Cache(k, k.clone(), None, positions, 0)


# ---- the steps ------------------------------------------------------------------------------

def split_heads(x: torch.Tensor, num_heads: int, head_dim: int) -> torch.Tensor:
    """(n, num_heads · head_dim) -> (n, num_heads, head_dim) -> (num_heads, n, head_dim)."""
    return x.view(-1, num_heads, head_dim).transpose(0, 1)


def band_mask(q_positions: torch.Tensor, k_positions: torch.Tensor, sliding_window_size: int | None,
              dtype=torch.float32) -> torch.Tensor:
    """1 where query position i may attend key position j: 0 ≤ i − j (causal), and i − j < W
    inside a sliding window (the book's ``diff = q_positions − k_positions``). (n_q, n_k)."""
    diff = q_positions.unsqueeze(-1) - k_positions.unsqueeze(0)             # (n_q, 1) - (1, n_k) -> (n_q, n_k)
    allowed = diff >= 0
    if sliding_window_size is not None:
        allowed = allowed & (diff < sliding_window_size)
    return allowed.to(dtype)


def attend(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
           ops: Ops) -> torch.Tensor:
    """Section 3.6's attention on per-head tensors: queries (h, n, hd), keys/values (h, T_k, hd);
    records each step in ``ops`` and returns the heads merged back, (n, h · hd)."""
    num_heads, n, head_dim = queries.shape
    # attn_scores (h, n, T_k), masked_scores (a new tensor), attn_weights = softmax(masked / √hd)
    attn_weights = attention_weights(queries, keys, mask, ops)              # (h, n, T_k)
    context_heads = ops.record("context_heads", attn_weights @ values)      # (h, n, T_k) @ (h, T_k, hd) -> (h, n, hd)
    # (h, n, hd) -> (n, h, hd) -> (n, h · hd)
    return ops.record("context_concat", context_heads.transpose(0, 1).reshape(n, num_heads * head_dim))


def kv_step(x: torch.Tensor, w: Weights, cache: Cache, ptr: int, n: int, num_heads: int, num_kv_groups: int,
            head_dim: int, group_size: int, sliding_window_size: int | None, ops: Ops) -> dict[str, torch.Tensor]:
    """GroupedQueryAttention.forward(x, use_cache=True) for the rows x (n, d_in) at positions
    ptr … ptr + n − 1, each tensor recorded where it is made (the code panel's lines)."""
    record = ops.record
    queries = record("queries", split_heads(project(x, w.query), num_heads, head_dim))              # (n, d_out) -> (h, n, hd)
    keys_new = record("keys_new", split_heads(project(x, w.key), num_kv_groups, head_dim))          # (n, g·hd) -> (g, n, hd)
    values_new = record("values_new", split_heads(project(x, w.value), num_kv_groups, head_dim))    # (n, g·hd) -> (g, n, hd)
    if sliding_window_size is None:
        cache_k = record("cache_k", torch.cat([cache.k, keys_new], dim=1))      # (g, ptr, hd) + (g, n, hd) -> (g, ptr + n, hd)
        cache_v = record("cache_v", torch.cat([cache.v, values_new], dim=1))    # (g, ptr + n, hd)
        key_positions = record("key_positions", torch.arange(ptr + n, device=x.device))   # (ptr + n,)
        keys_base, values_base = cache_k, cache_v
    else:
        W = sliding_window_size
        # what the ring holds before this call, oldest first: positions ptr − W … ptr − 1 at slots pos % W
        held = torch.arange(max(0, ptr - W), ptr, device=x.device)            # (min(ptr, W),)
        q_positions = torch.arange(ptr, ptr + n, device=x.device)             # (n,)
        keep = min(held.shape[0] + n, W + n - 1)     # (the earliest query needs W − 1 keys before it: the book's attn_keep)
        keys_base = torch.cat([cache.k[:, held % W], keys_new], dim=1)[:, -keep:]        # (g, keep, hd)
        values_base = torch.cat([cache.v[:, held % W], values_new], dim=1)[:, -keep:]    # (g, keep, hd)
        key_positions = record("key_positions", torch.cat([held, q_positions])[-keep:])   # (keep,)
        # (min(n, W),): the ring keeps the last W positions, each new row in slot pos % W (a new tensor)
        written = q_positions[-W:]
        record("ring_k", cache.k.index_copy(1, written % W, keys_new[:, -W:]))           # (g, W, hd)
        record("ring_v", cache.v.index_copy(1, written % W, values_new[:, -W:]))         # (g, W, hd)
        record("ring_positions", cache.positions.index_copy(0, written % W, written))    # (W,), −1: empty
    # each K/V head serves group_size query heads: [K1, K2] -> [K1, K1, K2, K2] (not repeat: [K1, K2, K1, K2])
    keys = record("keys", keys_base.repeat_interleave(group_size, dim=0))                # (g, T_k, hd) -> (h, T_k, hd)
    values = record("values", values_base.repeat_interleave(group_size, dim=0))          # (g, T_k, hd) -> (h, T_k, hd)
    mask = record("mask", band_mask(torch.arange(ptr, ptr + n, device=x.device), key_positions, sliding_window_size,
                                    x.dtype))                                             # (n, T_k)
    context_concat = attend(queries, keys, values, mask, ops)                             # (n, h · hd)
    record("context_vecs", project(context_concat, w.out))                               # (n, d_out) -> (n, d_out)
    return ops.named


def mla_step(x: torch.Tensor, w: Weights, cache: Cache, ptr: int, n: int, num_heads: int, head_dim: int,
             ops: Ops) -> dict[str, torch.Tensor]:
    """MultiHeadLatentAttention.forward(x, use_cache=True): only the latent c_kv is cached."""
    record = ops.record
    queries = record("queries", split_heads(project(x, w.query), num_heads, head_dim))              # (n, d_out) -> (h, n, hd)
    latent_new = record("latent_new", project(x, w.DKV))                          # (n, d_in) -> (n, latent_dim)
    cache_c_kv = record("cache_c_kv", torch.cat([cache.c_kv, latent_new], dim=0))  # (ptr, latent) + (n, latent) -> (ptr + n, latent)
    key_positions = record("key_positions", torch.arange(ptr + n, device=x.device))                # (ptr + n,)
    keys = record("keys", split_heads(project(cache_c_kv, w.UK), num_heads, head_dim))             # (T_k, latent) -> (h, T_k, hd)
    values = record("values", split_heads(project(cache_c_kv, w.UV), num_heads, head_dim))         # (T_k, latent) -> (h, T_k, hd)
    mask = record("mask", band_mask(torch.arange(ptr, ptr + n, device=x.device), key_positions, None, x.dtype))   # (n, T_k)
    context_concat = attend(queries, keys, values, mask, ops)                             # (n, h · hd)
    record("context_vecs", project(context_concat, w.out))                               # (n, d_out) -> (n, d_out)
    return ops.named


def forward(variant: str, x: torch.Tensor, w: Weights, cache: Cache, num_heads: int, num_kv_groups: int,
            sliding_window_size: int | None = None) -> tuple[dict[str, torch.Tensor], Cache]:
    """One call of the variant's layer on the rows x at the cache's pointer: the named tensors and
    the new cache (MLA: the latent; SWA: the ring; else the appended K/V)."""
    n, ptr = x.shape[0], cache.ptr_current_pos
    head_dim = w.query.W.shape[1] // num_heads
    if variant == "mla":
        named = mla_step(x, w, cache, ptr, n, num_heads, head_dim, Ops())
        return named, Cache(None, None, named["cache_c_kv"], named["key_positions"], ptr + n)
    W = sliding_window_size if variant == "swa" else None
    named = kv_step(x, w, cache, ptr, n, num_heads, num_kv_groups, head_dim, num_heads // num_kv_groups, W, Ops())
    k, v, positions = ("cache_k", "cache_v", "key_positions") if W is None else ("ring_k", "ring_v", "ring_positions")
    return named, Cache(named[k], named[v], None, named[positions], ptr + n)


# ---- the code panel ------------------------------------------------------------------------

def code(cfg) -> list[tuple[str | None, str]]:
    """The lines of one decode step for ``cfg`` (a core.decode.DecodeConfig), tagged by term: the
    step's own (``kv_step``'s or ``mla_step``'s, read by core.stages.lines) for one new row at ptr."""
    h, hd, g, W, v = cfg.num_heads, cfg.head_dim, cfg.kv_groups, cfg.window, cfg.variant
    c: list[tuple[str | None, str]] = [
        ("position", "ptr = self.ptr_current_pos  # the new token's position"),
        ("x_new", "x_new = next_embedding  # (1, d_in)"),
        (None, f"n, num_heads, head_dim = 1, {h}, {hd}" if v == "mla" else
         f"n, num_heads, num_kv_groups, head_dim, group_size = 1, {h}, {g}, {hd}, {h // g}")]
    band = [("band_row", f"band_row = (ptr - torch.arange(ptr + 1) < {W}).float()  # 1 inside the window")] if v == "swa" else []
    allowed = f"((diff >= 0) & (diff < {W}))" if v == "swa" else "(diff >= 0)"
    # the mask row is written here (the forward's band_mask, for the one row ptr)
    given = {"mask": band + [(None, "diff = ptr - key_positions  # how far back each key is"),
                             ("mask", f"mask = {allowed}.float().unsqueeze(0)  # (1, T): the row for ptr")]}
    bias = {p: (f"b_{p}" if cfg.qkv_bias else None) for p in ("query", "key", "value", "DKV", "UK", "UV")}
    values = {"x": "x_new", "x.device": None, "sliding_window_size": None if v != "swa" else str(W),
              **{f"w.{p}.W": f"W_{p}" for p in bias}, **{f"w.{p}.b": b for p, b in bias.items()},
              "w.out.W": "W_out", "w.out.b": None if v in ("gqa", "mqa") else "b_out",
              "cache.k": "ring_k" if v == "swa" else "cache_k", "cache.v": "ring_v" if v == "swa" else "cache_v",
              "cache.positions": "ring_positions", "cache.c_kv": "cache_c_kv"}
    c += lines(mla_step if v == "mla" else kv_step, given, values)
    return c + [("recomputed", "recomputed = layer(all_tokens, use_cache=False)[ptr:ptr + 1]  # no cache; row ptr sees tokens 0…ptr"),
                ("check", "check = (context_vecs - recomputed).abs().max()")]


# ---- the inspector -------------------------------------------------------------------------

def explain(c):
    """The arithmetic of a clicked cell of a step (or the prefill); ``c`` is a core.provenance.Cell
    whose stage is the step's (``decode_pos07``…). None: the inspector shows the value."""
    name, S, cfg = c.name, c.stage, c.cfg
    rows = c.item.labels[-2] if len(c.item.axes) >= 2 else ()
    cols = c.item.labels[-1]
    i, j = c.i, c.j
    lead = c.lead
    if c.is_weight():
        return c.done("given", f"{name}{list(c.index)} = {c.f(c.value)}",
                      [f"drawn by nn.Linear's init after torch.manual_seed({cfg.seed}); learned in training"], c.value)
    if name == "position":
        return c.done("given", f"ptr_current_pos = {int(c.value)}",
                      [f"the new token is token {int(c.value)} (counted from 0): {int(c.value)} tokens are cached before it",
                       "the mask row and the positions of the keys are read off this pointer"], c.value)
    if name == "check":
        return c.done("check", f"max |context_vecs − recomputed| = {c.value:.3g}",
                      ["the cached step against one uncached pass over the sequence (its row ptr, which sees "
                       "tokens 0…ptr only: the sequence so far)",
                       "equal up to float rounding: the cache only saves recomputing the old keys and values"], c.value,
                      [c.source(S, "context_vecs", (), None, None), c.source(S, "recomputed", (), None, None)])
    if name in ("keys", "values") and cfg.variant != "mla":
        group = lead[0] // (cfg.num_heads // cfg.kv_groups)
        base = "cache_k" if name == "keys" else "cache_v"
        return c.done("copy", f"{name}[head {lead[0]}][{rows[i]}, {cols[j]}] = K/V head {group}'s row",
                      [f"repeat_interleave({cfg.num_heads // cfg.kv_groups}): query heads "
                       f"{group * (cfg.num_heads // cfg.kv_groups)}…{(group + 1) * (cfg.num_heads // cfg.kv_groups) - 1} "
                       f"share K/V head {group}", "no copy is cached: only the K/V heads are kept"], c.value,
                      [c.source(S, base if cfg.variant != "swa" else ("ring_k" if name == "keys" else "ring_v"),
                                (group,), None, (j,))])
    if name == "mask":
        q_pos = int(c.get(S, "position")[0]) if ("position" in c.trace.stages.get(S, {})) else i
        k_pos = int(c.get(S, "key_positions")[j])
        diff = q_pos - k_pos
        inside = cfg.variant != "swa" or diff < cfg.window
        why = (f"the query at position {q_pos} and the key at {k_pos}: {q_pos} − {k_pos} = {diff}"
               + ("" if cfg.variant != "swa" else f"; the window keeps 0 ≤ diff < {cfg.window}"))
        return c.done("mask", f"mask[{rows[i]}, {cols[j]}] = {int(c.value)}",
                      [why, "may attend" if diff >= 0 and inside else "hidden: set to −∞ before softmax"], c.value,
                      [c.source(S, "key_positions", (), None, (j,))])
    if name in ("queries", "keys_new", "values_new", "latent_new"):
        return _projection(c, S, name, rows, cols, i, j, lead)
    if name in ("cache_k", "cache_v", "cache_c_kv", "ring_k", "ring_v"):
        pos = int(c.get(S, "ring_positions")[i]) if name.startswith("ring") else i
        new = {"cache_k": "keys_new", "cache_v": "values_new", "cache_c_kv": "latent_new",
               "ring_k": "keys_new", "ring_v": "values_new"}[name]
        where = f"slot {i} = position {pos} % {cfg.window}" if name.startswith("ring") else f"row {i}"
        return c.done("copy", f"{name}[{rows[i]}, {cols[j]}] = {c.f(c.value)}",
                      [f"{where}: the {new} of the token at position {pos}, appended when it was new" if pos >= 0
                       else "an empty slot: the window has not wrapped around yet",
                       "cached rows are never recomputed: each step only appends (SWA: overwrites the oldest)"],
                      c.value)
    if name in ("key_positions", "ring_positions", "band_row"):
        what = {"key_positions": "the position of the key in this column",
                "ring_positions": "the position this ring slot holds (−1: empty)",
                "band_row": f"1 when 0 ≤ ptr − j < {cfg.window}: inside the window of the new token"}[name]
        return c.done("given", f"{name}[{cols[j]}] = {c.f(c.value)}", [what], c.value)
    if name == "masked_scores":
        hidden = float(c.get(S, "mask")[i, j]) == 0
        raw = float(c.get(S, "attn_scores", None, lead[0])[i, j])
        return c.done("mask", f"masked⁽{lead[0]}⁾[{rows[i]}, {cols[j]}]",
                      ["mask = 0: set to −∞ so softmax gives it weight 0" if hidden else f"mask = 1: the score is kept, {c.f(raw)}"],
                      float("-inf") if hidden else raw,
                      [c.source(S, "attn_scores", lead, (i,), (j,)), c.source(S, "mask", (), (i,), (j,))])
    if name == "context_concat":
        src_h, col = divmod(j, cfg.head_dim)
        value = float(c.get(S, "context_heads", None, src_h)[i, col])
        return c.done("concat", f"concat[{rows[i]}, {j}] = context_heads[head {src_h}][{rows[i]}, {col}]",
                      [f"column {j} = head {src_h}'s dim {col} (transpose + reshape put the heads side by side)"], value,
                      [c.source(S, "context_heads", (src_h,), (i,), (col,))])
    if name == "context_vecs":
        cat = c.get(S, "context_concat")[i]
        W = c.get(WEIGHTS, "W_out")[:, j]
        products, total, lines = c.dot(cat, W, f"concat[{rows[i]}, :]", f"W_out[:, {j}]", ("dims",))
        if "b_out" in c.trace.stages[WEIGHTS]:
            bias = float(c.get(WEIGHTS, "b_out")[j])
            total += bias
            lines += (f"+ out_proj bias b_out[{j}] = {c.f(bias)} → {c.f(total)}",)
        return c.done("dot", f"z[{rows[i]}, {j}] = concat[{rows[i]}, :] · W_out[:, {j}]", lines, total,
                      [c.source(S, "context_concat", (), (i,), None), c.source(WEIGHTS, "W_out", (), None, (j,))],
                      products)
    if name == "recomputed":
        return c.done("value", f"recomputed[{rows[i]}, {j}] = {c.f(c.value)}",
                      ["the same layer run without a cache over the whole sequence; row ptr sees tokens 0…ptr"], c.value)
    if name == "attn_scores":
        q = c.get(S, "queries", None, lead[0])[i]
        k = c.get(S, "keys", None, lead[0])[j]
        products, total, lines = c.dot(q, k, f"q⁽{lead[0]}⁾_{rows[i]}", f"k⁽{lead[0]}⁾_{cols[j]}", ("dims",))
        return c.done("dot", f"score⁽{lead[0]}⁾[{rows[i]}, {cols[j]}] = q · k", lines, total,
                      [c.source(S, "queries", lead, (i,), None), c.source(S, "keys", lead, (j,), None)], products)
    if name == "attn_weights":
        row = c.get(S, "masked_scores", None, lead[0])[i] / cfg.head_dim ** 0.5
        v, lines = c.softmax(row, j, f"masked scores / √{cfg.head_dim}")
        return c.done("softmax", f"softmax(masked⁽{lead[0]}⁾[{rows[i]}, :] / √{cfg.head_dim})[{cols[j]}]", lines, v,
                      [c.source(S, "masked_scores", lead, (i,), None)])
    if name == "context_heads":
        wrow = c.get(S, "attn_weights", None, lead[0])[i]
        vcol = c.get(S, "values", None, lead[0])[:, j]
        products, total, lines = c.dot(wrow, vcol, f"weights[{rows[i]}, :]", f"v⁽{lead[0]}⁾[:, {cols[j]}]", ("keys",))
        return c.done("dot", f"z⁽{lead[0]}⁾_{rows[i]}[{cols[j]}] = Σ_k weight[k] · v_k", lines, total,
                      [c.source(S, "attn_weights", lead, (i,), None), c.source(S, "values", lead, None, (j,))], products)
    return None


WEIGHTS = "decode_weights"                 # the trace's stage holding the weights (core.decode)


def _projection(c, S, name, rows, cols, i, j, lead):
    """queries/keys_new/values_new/latent_new[…, i, j] = x_i · W[:, col] (+ b[col])."""
    cfg = c.cfg
    weight = {"queries": "query", "keys_new": "key", "values_new": "value", "latent_new": "DKV"}[name]
    x_name = "x_new" if "x_new" in c.trace.stages[S] else "inputs"
    col = j if name == "latent_new" else lead[0] * cfg.head_dim + j
    x = c.get(S, x_name)[i]
    W = c.get(WEIGHTS, f"W_{weight}")[:, col]
    products, total, lines = c.dot(x, W, f"x_{rows[i]}", f"W_{weight}[:, {col}]", ("input dims",))
    if f"b_{weight}" in c.trace.stages[WEIGHTS]:
        bias = float(c.get(WEIGHTS, f"b_{weight}")[col])
        total += bias
        lines += (f"+ bias b_{weight}[{col}] = {c.f(bias)} → {c.f(total)}",)
    if name != "latent_new":
        what = "K/V head" if name != "queries" else "head"
        lines = (f"{what} {lead[0]} uses columns {lead[0] * cfg.head_dim}…{(lead[0] + 1) * cfg.head_dim - 1} "
                 f"of W_{weight}",) + tuple(lines)
    return c.done("dot", f"{name}[{rows[i]}, {cols[j]}] = x_{rows[i]} · W_{weight}[:, {col}]", lines, total,
                  [c.source(S, x_name, (), (i,), None), c.source(WEIGHTS, f"W_{weight}", (), None, (col,))], products)


STAGE = Stage("decode", "Decode with a KV cache (GQA, MQA, MLA, sliding window)", "ch04 bonus", TERMS, forward,
              code, explain, external=True)
