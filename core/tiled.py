"""The tiled-attention stage's trace: one head's Q, K, V walked tile by tile.

The stage itself (terms, the kernel's steps, code lines, inspector rules) is
core/stages/tiled.py; this module takes the chosen head's Q, K, V from the chapter's
MultiHeadAttention (the book's seeded weights, core.weights.draw_fused; the prompt as
core.inputs draws it), runs the kernel and wraps the tensors as a trace core.export writes:

- ``tiled_inputs``: Q, K, V of the head;
- ``tiled_step000``, ``tiled_step001``…: one per visited tile, in the kernel's order;
- ``tiled_result``: O, m, l, L, ordinary attention, max |diff|, the tile grid, the HBM counts.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from core.device import resolve_device
from core.inputs import Inputs, resolve_inputs
from core.stages import tiled as stage
from core.stages.decode import split_heads
from core.stages.schema import Term
from core.tiled_config import TiledConfig
from core.tokens import unique_labels
from core.trace import Intermediate, TraceLookup
from core.weights import draw_fused

DTYPES = {"float32": torch.float32, "float64": torch.float64}
INPUTS, RESULT = "tiled_inputs", "tiled_result"


def step_stage(step: int, total: int) -> str:
    """The stage (and export folder) of the step-th visited tile: tiled_step007 (zero-padded)."""
    return f"tiled_step{step:0{max(3, len(str(max(total - 1, 0))))}d}"


def head_qkv(cfg) -> tuple[Inputs, dict[str, torch.Tensor], str, str | None]:
    """(the prompt, {"queries", "keys", "values"} of ``cfg.head`` as (T, head_dim), device, note).

    The chapter's MultiHeadAttention: draw_fused's W_query, W_key, W_value after
    torch.manual_seed(seed), X W, .view(T, h, hd).transpose(0, 1), head ``cfg.head``."""
    device, note = resolve_device(cfg.device)
    dtype = DTYPES[cfg.dtype]
    inp = resolve_inputs(cfg.prompt_config())
    inp.check_values()
    qkv, _out = draw_fused("linear", cfg.seed, cfg.d_in, cfg.d_out, cfg.qkv_bias)
    x = inp.tensor(dtype).to(device)                                        # (T, d_in)
    out = {}
    for role, name in (("query", "queries"), ("key", "keys"), ("value", "values")):
        p = qkv[role].to(device, dtype)
        y = x @ p.W if p.b is None else x @ p.W + p.b                       # (T, d_in) -> (T, d_out)
        out[name] = split_heads(y, cfg.num_heads, cfg.head_dim)[cfg.head]   # (T, d_out) -> (h, T, hd) -> (T, hd)
    return inp, out, device, note


def wrap(stage_name: str, named: dict[str, torch.Tensor], terms: dict[str, Term], labels_of) -> dict[str, Intermediate]:
    """Intermediates in the terms' order; ``labels_of(kind, size, name)`` labels an axis."""
    unknown = set(named) - set(terms)
    if unknown:
        raise AssertionError(f"{stage_name}: {sorted(unknown)} are not in the stage's terms")
    out = {}
    for name, t in terms.items():
        if name not in named:
            continue
        tensor = named[name]
        if tensor.dim() != len(t.axes):
            raise AssertionError(f"{stage_name}.{name}: shape {tuple(tensor.shape)} does not match axes {t.axes}")
        labels = tuple(tuple(labels_of(k, n, name)) for k, n in zip(t.axes, tensor.shape))
        out[name] = Intermediate(stage_name, name, tensor, t, t.axes, labels)
    return out


@dataclass(frozen=True, eq=False)
class HeadTrace(TraceLookup):
    """A one-head stage's intermediates, shaped like core.trace.Trace (core.export writes it)."""

    config: object
    inputs: Inputs
    device: str
    stages: dict[str, dict[str, Intermediate]]
    compute_ms: float
    notes: tuple[str, ...] = ()


class TiledTrace(HeadTrace):
    @property
    def steps(self) -> list[dict[str, Intermediate]]:
        return [s for n, s in self.stages.items() if n.startswith("tiled_step")]


def build_tiled(cfg: TiledConfig) -> TiledTrace:
    """Run the kernel on the head's Q, K, V; every visited tile kept, checked against ordinary attention."""
    from core.flash_io import flash_io, standard_io

    started = time.perf_counter()
    inp, qkv, device, note = head_qkv(cfg)
    Q, K, V = qkv["queries"], qkv["keys"], qkv["values"]
    T, d = Q.shape
    labels = unique_labels(inp.tokens)
    item = 8 if cfg.dtype == "float64" else 4
    with torch.no_grad():
        steps, result = stage.flash_attention(Q, K, V, cfg.block_rows, cfg.block_cols, cfg.causal, cfg.fa2)
        ref = stage.reference(Q, K, V, cfg.causal)
        std, flash = standard_io(T, d), flash_io(T, d, cfg.block_rows, cfg.block_cols, cfg.causal, cfg.fa2)
        io = torch.tensor([[x.reads, x.writes, x.total, x.total * item] for x in (std, flash)],
                          dtype=torch.float64, device=device)
        result.update(reference=ref["reference"],
                      check=(result["output"] - ref["reference"]).abs().max().reshape(1),
                      lse_check=(result["lse"] - ref["reference_lse"]).abs().max().reshape(1), io=io)

    def plain(kind, size, name, rows=None, cols=None):
        if kind in ("token",):
            return labels[:size]
        if kind == "query":
            return rows if rows is not None else labels[:size]
        if kind == "key":
            return cols
        if kind == "hd":
            return tuple(f"d{i}" for i in range(size))
        if kind == "one":
            return (name,)
        if kind == "method":
            return stage.IO_METHODS
        if kind == "tile":
            table = result["tiles"].tolist()
            return tuple(f"q{int(r[0])}·k{int(r[1])}" for r in table)
        if kind == "field":
            return {"tile": stage.TILE_FIELDS, "tiles": stage.TABLE_FIELDS, "io": stage.IO_FIELDS}[name]
        raise AssertionError(kind)

    stages = {INPUTS: wrap(INPUTS, qkv, stage.INPUT_TERMS, plain)}
    for n, step in enumerate(steps):
        t = [int(v) for v in step["tile"].tolist()]
        rows, cols = labels[t[3]:t[4] + 1], labels[t[5]:t[6] + 1]
        name = step_stage(n, len(steps))
        stages[name] = wrap(name, step, stage.TERMS, lambda k, s, nm: plain(k, s, nm, rows, cols))
    stages[RESULT] = wrap(RESULT, result, stage.RESULT_TERMS, plain)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return TiledTrace(cfg, inp, device, stages, (time.perf_counter() - started) * 1000.0, (note,) if note else ())
