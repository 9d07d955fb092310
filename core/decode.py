"""The decode stage's trace: a prompt processed once, then tokens appended one at a time.

The stage itself (its terms, the variants' forwards, code lines and inspector rules) is
core/stages/decode.py; this module draws the weights and the new tokens' embeddings, runs the
prefill and every step, recomputes every position without the cache for the check, and wraps the
tensors as a trace that core.export writes (one folder per generated position):

- ``decode_weights``: W_query, W_key/W_value (MLA: W_DKV, W_UK, W_UV), W_out, the biases;
- ``decode_prefill``: the prompt in one call (full causal attention; the cache filled);
- ``decode_pos06``, ``decode_pos07``…: one per new token, at that position;
- ``decode_summary``: every output, cached and recomputed in one uncached pass, per position.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from core.config import ConfigError
from core.decode_config import MAX_DECODE_TOKENS, DecodeConfig
from core.device import resolve_device
from core.inputs import Inputs, random_inputs, resolve_inputs
from core.stages import decode as stage
from core.stages.schema import Term
from core.tokens import tokenize, unique_labels
from core.trace import Intermediate, TraceLookup
from core.weights import Projection

DTYPES = {"float32": torch.float32, "float64": torch.float64}
WEIGHTS, PREFILL, SUMMARY = "decode_weights", "decode_prefill", "decode_summary"


def step_stage(position: int, total: int) -> str:
    """The stage (and export folder) of the token at ``position``: decode_pos06 (zero-padded)."""
    return f"decode_pos{position:0{len(str(max(total - 1, 0)))}d}"


# ---- the weights, drawn as the book's classes draw them --------------------------------------

def _linear(d_in: int, d_out: int, bias: bool) -> Projection:
    layer = nn.Linear(d_in, d_out, bias=bias)
    return Projection(layer.weight.detach().T.clone(), None if layer.bias is None else layer.bias.detach().clone())


def draw_weights(cfg: DecodeConfig) -> stage.Weights:
    """torch.manual_seed(seed), then W_query, the K/V projections (MLA: W_DKV, W_UK, W_UV) and
    out_proj, in that order, on the CPU in float32 (the caller's RNG is left as it was).

    The same order for every variant: W_query is the same for all, and mha draws exactly the
    chapter's MultiHeadAttention (core.weights.draw_fused); gqa with num_kv_groups = num_heads
    draws mha's weights. out_proj has a bias except in gqa/mqa (the book's GroupedQueryAttention).
    """
    d_in, d_out, g, hd, bias = cfg.d_in, cfg.d_out, cfg.kv_groups, cfg.head_dim, cfg.qkv_bias
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        query = _linear(d_in, d_out, bias)
        if cfg.variant == "mla":
            latent = cfg.latent
            DKV, UK, UV = _linear(d_in, latent, bias), _linear(latent, d_out, bias), _linear(latent, d_out, bias)
            return stage.Weights(query, _linear(d_out, d_out, True), DKV=DKV, UK=UK, UV=UV)
        key, value = _linear(d_in, g * hd, bias), _linear(d_in, g * hd, bias)
        out = _linear(d_out, d_out, cfg.variant not in ("gqa", "mqa"))
        return stage.Weights(query, out, key=key, value=value)


def _to(w: stage.Weights, device, dtype) -> stage.Weights:
    return stage.Weights(**{f: (None if getattr(w, f) is None else getattr(w, f).to(device, dtype))
                            for f in ("query", "out", "key", "value", "DKV", "UK", "UV")})


# ---- the sequence: the prompt and the new tokens' embeddings ---------------------------------

def sequence(cfg: DecodeConfig) -> tuple[Inputs, int]:
    """(all tokens' Inputs, the prompt's length). A new word already in the prompt gets its row
    again (an embedding table); other new words get seeded random vectors, as the app draws them."""
    prompt = resolve_inputs(cfg.prompt_config())
    words = tokenize(cfg.next_text) if cfg.next_text.strip() else [f"gen{i + 1}" for i in range(cfg.new_tokens)]
    T0 = len(prompt.tokens)
    if T0 + len(words) > MAX_DECODE_TOKENS:
        raise ConfigError("new_tokens", f"the prompt's {T0} tokens and {len(words)} new ones make "
                                        f"{T0 + len(words)}; the decode stage keeps at most {MAX_DECODE_TOKENS}")
    prompt.check_values()
    drawn = random_inputs(words, cfg.d_in, cfg.seed)
    rows = [prompt.array[prompt.tokens.index(word)] if word in prompt.tokens else drawn.array[k]
            for k, word in enumerate(words)]
    return Inputs(prompt.tokens + tuple(words), list(prompt.array) + rows), T0


# ---- labels and wrapping ------------------------------------------------------------------

def _labels(kind: str, size: int, name: str, ctx: dict) -> tuple[str, ...]:
    labels = ctx["labels"]
    if kind in ("token", "query"):
        return labels[:size]
    if kind == "key":
        return tuple(labels[p] for p in ctx["key_positions"])
    if kind == "new":
        return (labels[ctx["position"]],)
    if kind == "pos":
        return labels[:size]
    if kind == "one":
        return (name,)
    if kind == "kv":
        hd = ctx["head_dim"]
        return tuple(f"g{c // hd}.d{c % hd}" for c in range(size))
    prefix = {"in": "in", "out": "out", "hd": "d", "head": "head", "group": "kv", "latent": "c", "slot": "slot"}[kind]
    return tuple(f"{prefix}{i}" for i in range(size))


def _wrap(stage_name: str, named: dict[str, torch.Tensor], terms: dict[str, Term], axes_of, ctx: dict
          ) -> dict[str, Intermediate]:
    unknown = set(named) - set(terms)
    if unknown:
        raise AssertionError(f"{stage_name}: {sorted(unknown)} are not in the stage's terms")
    out = {}
    for name, term in terms.items():                     # the stage table's order
        if name not in named:
            continue
        tensor, axes = named[name], axes_of(name)
        if tensor.dim() != len(axes):
            raise AssertionError(f"{stage_name}.{name}: shape {tuple(tensor.shape)} does not match axes {axes}")
        labels = tuple(_labels(k, n, name, ctx) for k, n in zip(axes, tensor.shape))
        out[name] = Intermediate(stage_name, name, tensor, term, axes, labels)
    return out


@dataclass(frozen=True, eq=False)
class DecodeTrace(TraceLookup):
    """The decode stage's intermediates, shaped like core.trace.Trace (core.export writes it)."""

    config: DecodeConfig
    inputs: Inputs                 # every token: the prompt, then the new ones
    prompt_tokens: int
    device: str
    stages: dict[str, dict[str, Intermediate]]
    compute_ms: float
    notes: tuple[str, ...] = ()

    @property
    def positions(self) -> tuple[int, ...]:
        """The positions of the new tokens, one step each."""
        return tuple(range(self.prompt_tokens, len(self.tokens)))

    def step(self, position: int) -> dict[str, Intermediate]:
        return self.stages[step_stage(position, len(self.tokens))]


# ---- the memory guard ------------------------------------------------------------------------

def estimate_bytes(cfg: DecodeConfig, prompt: int, new: int) -> int:
    """Bytes the trace keeps (every step's cache, keys, scores…), plus the largest recompute."""
    h, hd, d_out, g = cfg.num_heads, cfg.head_dim, cfg.d_out, cfg.kv_groups
    item = 8 if cfg.dtype == "float64" else 4
    total = 0
    for n, T in [(prompt, prompt)] + [(1, p + 1) for p in range(prompt, prompt + new)]:
        Tk = T if cfg.window is None else min(T, cfg.window + n - 1)
        cache = cfg.latent * T if cfg.variant == "mla" else 2 * g * (cfg.window or T) * hd
        total += cache + 2 * h * Tk * hd + 3 * h * n * Tk + n * Tk + 4 * n * d_out + 2 * h * n * hd
    T = prompt + new
    total += 3 * h * T * T + 4 * T * d_out                   # the uncached recompute (temporaries)
    return total * item


def check_memory(cfg: DecodeConfig, prompt: int, new: int, device: str) -> None:
    from core.memory import BUDGET_SHARE, MemoryBudgetError, _fmt, available_bytes
    need = estimate_bytes(cfg, prompt, new)
    budget = int(available_bytes(device) * BUDGET_SHARE)
    if need > budget:
        raise MemoryBudgetError(f"this decode trace needs about {_fmt(need)} but the budget is {_fmt(budget)}; "
                                f"reduce the new tokens ({new}), the prompt ({prompt} tokens) or d_out ({cfg.d_out})")


# ---- the run ---------------------------------------------------------------------------------

def build_decode(cfg: DecodeConfig, weights: stage.Weights | None = None) -> DecodeTrace:
    """Prefill the prompt, then one step per new token, each checked against no cache.

    ``weights``: the layer's projections (default: ``draw_weights(cfg)``). Raises ConfigError
    for the inputs and core.memory.MemoryBudgetError when the trace would not fit.
    """
    started = time.perf_counter()
    device, note = resolve_device(cfg.device)
    dtype = DTYPES[cfg.dtype]
    inp, T0 = sequence(cfg)
    T = len(inp.tokens)
    check_memory(cfg, T0, T - T0, device)
    w = _to(weights if weights is not None else draw_weights(cfg), device, dtype)
    x_all = inp.tensor(dtype).to(device)                                   # (T, d_in)
    labels = unique_labels(inp.tokens)
    h, g, W = cfg.num_heads, cfg.kv_groups, cfg.window

    def run(x, cache):
        return stage.forward(cfg.variant, x, w, cache, h, g, W)

    def fresh():
        return stage.empty_cache(g, cfg.head_dim, cfg.latent, W, device, dtype)

    ctx = {"labels": labels, "head_dim": cfg.head_dim}
    stages: dict[str, dict[str, Intermediate]] = {}
    with torch.no_grad():
        stages[WEIGHTS] = _wrap(WEIGHTS, w.named(), stage.WEIGHT_TERMS, lambda n: stage.WEIGHT_TERMS[n].axes, ctx)
        named, cache = run(x_all[:T0], fresh())                            # prefill: the prompt in one call
        named = {"inputs": x_all[:T0], **named}
        stages[PREFILL] = _wrap(PREFILL, named, {"inputs": stage.SUMMARY_TERMS["inputs"], **stage.TERMS},
                                lambda n: ("token", "in") if n == "inputs" else stage.prefill_axes(n),
                                {**ctx, "key_positions": named["key_positions"].tolist()})
        outputs = [named["context_vecs"]]
        # the check: one uncached pass over every token; causal (or banded), its row p sees only
        # tokens 0…p, so it is full attention over the sequence so far at every position
        full = run(x_all, fresh())[0]["context_vecs"]                      # (T, d_out)
        for p in range(T0, T):
            x_new = x_all[p:p + 1]                                         # (1, d_in)
            named, cache = run(x_new, cache)                               # one token, the cache read and grown
            recomputed = full[p:p + 1]                                     # (T, d_out) -> (1, d_out)
            step = {"position": torch.tensor([p], device=device), "x_new": x_new, **named,
                    "recomputed": recomputed,
                    "check": (named["context_vecs"] - recomputed).abs().max().reshape(1)}
            if W is not None:
                step["band_row"] = stage.band_mask(torch.tensor([p], device=device),
                                                   torch.arange(p + 1, device=device), W, dtype)   # (1, p + 1)
            name = step_stage(p, T)
            stages[name] = _wrap(name, step, stage.TERMS, lambda n: stage.TERMS[n].axes,
                                 {**ctx, "position": p, "key_positions": named["key_positions"].tolist()})
            outputs.append(named["context_vecs"])
        cached = torch.cat(outputs)                                        # (T0, d_out) + steps × (1, d_out) -> (T, d_out)
        stages[SUMMARY] = _wrap(SUMMARY, {"inputs": x_all, "context_vecs": cached, "recomputed": full,
                                          "max_abs_diff": (cached - full).abs().amax(dim=-1)},
                                stage.SUMMARY_TERMS, lambda n: stage.SUMMARY_TERMS[n].axes, ctx)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    notes = (note,) if note else ()
    return DecodeTrace(cfg, inp, T0, device, stages, (time.perf_counter() - started) * 1000.0, notes)
