"""The trace: every intermediate of every stage for one config, in the chapter's order.

``build_trace(config)`` draws the weights as the book does, runs each stage's forward
(core/stages/) with the chapter's ops or the engine's (core/engine/ops.py; chosen in
``_forward``) and wraps each tensor with its term from the stage table (symbol, formula,
axes and axis labels). The trace is read-only: look intermediates up with
``trace["causal", "attn_weights"]``.
``build_trace_in_steps(config, first=stage)`` gives the same trace in two parts: the stage on
screen (with what it reads, ``NEEDS``) first, then all; the window draws the first at once.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from core import weights
from core.config import AttentionConfig
from core.device import resolve_device
from core.engine import cache
from core.engine import ops as engine
from core.engine.lazy import Lazy
from core.inputs import Inputs, resolve_inputs
from core.stages import causal, multihead, simplified, trainable
from core.stages.schema import Term
from core.vocabulary import STAGES, VOCABULARY

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True, eq=False)
class Intermediate:
    """One named tensor of the trace with what a view needs to label it: immutable, nothing kept.

    A few intermediates that are a cheap, exact function of another (e.g. the multi-head
    masked scores, or the wrapper that the fused path does not need) are *derived*: their
    source is a core.engine.lazy.Lazy, computed once on first access (the Lazy keeps it).
    ``is_ready`` tells whether it was. What a view derives to draw one (images, colour
    levels, notes) is the GUI's (gui/display_cache.py), not kept here.
    """

    stage: str
    name: str
    source: torch.Tensor | Lazy
    term: Term
    axes: tuple[str, ...]                 # axis kinds, e.g. ("batch", "head", "query", "key")
    labels: tuple[tuple[str, ...], ...]   # one label per index along each axis

    @property
    def tensor(self) -> torch.Tensor:
        return self.source if isinstance(self.source, torch.Tensor) else self.source.value()

    @property
    def is_ready(self) -> bool:
        return isinstance(self.source, torch.Tensor) or self.source.ready

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape)

    @property
    def symbol(self) -> str:
        return self.term.symbol

    @property
    def formula(self) -> str:
        return self.term.formula

    @property
    def key(self) -> tuple[str, str]:
        return (self.stage, self.name)

    def numpy(self) -> np.ndarray:
        """A read-only CPU array: on the CPU a view of the tensor's memory (no 50 MB copy per
        1024-token × 12-head intermediate; nothing changes a trace tensor in place), made anew
        each call (microseconds); from another device a copy each call (a caller that reads it
        often keeps it, as the GUI's display cache does)."""
        t = self.tensor.detach()
        arr = t.numpy() if t.device.type == "cpu" else t.to("cpu").numpy()
        arr = arr.view()                         # our own read-only view, whoever else holds the tensor
        arr.setflags(write=False)
        return arr

    def lead_axes(self) -> int:
        """How many leading (batch/head) axes come before the displayed 2-D (or 1-D) slice."""
        return max(self.tensor.dim() - 2, 0)


class TraceLookup:
    """Read-only lookup of a trace's intermediates: ``trace[stage, name]``, ``in``, iteration in order,
    and its tokens and labels. Shared by Trace and the traces of the stages with their own options
    (core.pretrained, core.decode, core.tiled, core.rope)."""

    stages: dict[str, dict[str, Intermediate]]

    def _key(self, key) -> tuple[str, str]:
        return key

    def __getitem__(self, key) -> Intermediate:
        stage, name = self._key(key)
        return self.stages[stage][name]

    def __contains__(self, key) -> bool:
        stage, name = self._key(key)
        return stage in self.stages and name in self.stages[stage]

    def __iter__(self) -> Iterator[Intermediate]:
        for stage in self.stages.values():
            yield from stage.values()

    @property
    def tokens(self) -> tuple[str, ...]:
        """The tokens of the trace's ``inputs`` (the pretrained trace: its WordPiece pieces)."""
        return self.inputs.tokens

    @property
    def labels(self) -> tuple[str, ...]:
        """The tokens made unique (core.tokens.unique_labels): the rows' and columns' labels."""
        return self.inputs.labels


@dataclass(frozen=True, eq=False)
class Trace(TraceLookup):
    config: AttentionConfig
    inputs: Inputs
    device: str                                   # the device actually used ("cpu", "cuda")
    stages: dict[str, dict[str, Intermediate]]    # stage -> name -> intermediate, in order
    compute_ms: float
    notes: tuple[str, ...] = ()                   # e.g. "cuda is not available; using cpu"
    multihead_given: bool = False                 # stage 4's fused weights came from multihead_override


def axis_labels(kind: str, size: int, token_labels: tuple[str, ...]) -> tuple[str, ...]:
    if kind in ("token", "query", "key"):
        return token_labels
    return _numbered_labels(kind, size)


@functools.lru_cache(maxsize=64)
def _numbered_labels(kind: str, size: int) -> tuple[str, ...]:
    """in0, in1, … (made once per kind and size: 768 labels per axis at GPT-2 sizes)."""
    prefix = {"in": "in", "out": "out", "hd": "d", "head": "head", "batch": "batch"}[kind]
    return tuple(f"{prefix}{i}" for i in range(size))


def _wrap(stage: str, named: dict[str, torch.Tensor | Lazy], batch: int, token_labels) -> dict[str, Intermediate]:
    terms = VOCABULARY[stage]
    unknown = set(named) - set(terms)
    if unknown:
        raise AssertionError(f"{stage}: {sorted(unknown)} are not in the stage's TERMS")
    out = {}
    for name, term in terms.items():             # the stage table's order, whatever the forward's
        if name not in named:
            continue                             # e.g. the biases, without qkv_bias
        tensor = named[name]
        axes = term.axes
        if term.batched:
            if batch == 1:
                tensor = tensor.squeeze(0)    # (1, …) -> (…)
            else:
                axes = ("batch",) + axes
        if len(tensor.shape) != len(axes):
            raise AssertionError(f"{stage}.{name}: shape {tuple(tensor.shape)} does not match axes {axes}")
        labels = tuple(axis_labels(k, n, token_labels) for k, n in zip(axes, tensor.shape))
        out[name] = Intermediate(stage, name, tensor, term, axes, labels)
    return out


def _check_overrides(override: dict | None, config: AttentionConfig) -> dict[str, torch.Tensor]:
    """Edited W_query/W_key/W_value (d_in × d_out) for the trainable and causal stages."""
    from core.config import MAX_ABS_EMBEDDING, ConfigError

    out = {}
    for name, value in (override or {}).items():
        role = name.removeprefix("W_")
        if role not in weights.ROLES:
            raise ConfigError(name, "only W_query, W_key and W_value can be edited")
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (config.d_in, config.d_out):
            raise ConfigError(name, f"must be d_in × d_out = {config.d_in} × {config.d_out}, got "
                                    f"{' × '.join(map(str, arr.shape))}")
        if not (np.abs(arr) <= MAX_ABS_EMBEDDING).all():  # larger ones overflow the float32 scores
            raise ConfigError(name, f"every weight must be a finite number between -{MAX_ABS_EMBEDDING:g} "
                                    f"and {MAX_ABS_EMBEDDING:g}")
        out[role] = torch.tensor(arr, dtype=torch.float32)
    return out


MULTIHEAD_WEIGHTS = ("W_query", "W_key", "W_value", "W_out", "b_out")


def _check_multihead(override: dict | None, config: AttentionConfig) -> dict[str, torch.Tensor]:
    """MultiHeadAttention's own weights (e.g. a trained layer's, from core.train): W_query, W_key,
    W_value (d_in × d_out), W_out (d_out × d_out), b_out (d_out,), all five or none."""
    from core.config import MAX_ABS_EMBEDDING, ConfigError

    if not override:
        return {}
    missing = [n for n in MULTIHEAD_WEIGHTS if n not in override]
    unknown = [n for n in override if n not in MULTIHEAD_WEIGHTS]
    if unknown:
        raise ConfigError(f"multihead.{unknown[0]}", "is not a weight of MultiHeadAttention")
    if missing:
        raise ConfigError(f"multihead.{missing[0]}", "is missing; give all of " + ", ".join(MULTIHEAD_WEIGHTS))
    if config.qkv_bias:
        raise ConfigError("qkv_bias", "must be off for MultiHeadAttention loaded without query/key/value biases")
    shapes = {"W_query": (config.d_in, config.d_out), "W_key": (config.d_in, config.d_out),
              "W_value": (config.d_in, config.d_out), "W_out": (config.d_out, config.d_out), "b_out": (config.d_out,)}
    out = {}
    for name, shape in shapes.items():
        arr = np.asarray(override[name], dtype=np.float64)
        if arr.shape != shape:
            raise ConfigError(f"multihead.{name}", f"must have shape {' × '.join(map(str, shape))}, got "
                                                   f"{' × '.join(map(str, arr.shape))}")
        if not (np.abs(arr) <= MAX_ABS_EMBEDDING).all():
            raise ConfigError(f"multihead.{name}", f"every weight must be a finite number between "
                                                   f"-{MAX_ABS_EMBEDDING:g} and {MAX_ABS_EMBEDDING:g}")
        out[name] = torch.tensor(arr, dtype=torch.float32)   # float32, as the trained model keeps them
    return out


@dataclass(frozen=True)
class _Run:
    """What the stages' forwards take, for one trace."""

    config: AttentionConfig
    x: torch.Tensor                  # (T, d_in)
    xb: torch.Tensor                 # (b, T, d_in): the book's torch.stack of copies, as a view
    mask: torch.Tensor               # (T, T), 1 = may attend
    device: str
    dtype: torch.dtype
    overrides: dict[str, torch.Tensor]
    fused_override: dict[str, torch.Tensor]   # MultiHeadAttention's own five weights (a trained layer's), or {}

    @property
    def draw(self) -> tuple:
        c = self.config
        return (c.init, c.seed, c.d_in, c.d_out, c.qkv_bias, self.device, self.dtype)

    def qkv(self) -> dict[str, weights.Projection]:
        """W_query, W_key, W_value of the trainable and causal stages (edited ones in place of the drawn)."""
        return {r: weights.Projection(self.overrides[r].to(self.device, self.dtype), p.b) if r in self.overrides else p
                for r, p in cache.qkv(*self.draw).items()}

    def dropout_mask(self) -> torch.Tensor:
        c, num_tokens = self.config, self.x.shape[0]
        return cache.dropout_mask((c.batch, num_tokens, num_tokens), c.dropout, c.dropout_seed, self.device, self.dtype)

    def heads(self):
        c = self.config
        return cache.wrapper_heads(c.init, c.seed, c.d_in, c.head_dim, c.num_heads, c.qkv_bias, self.device, self.dtype)

    def fused(self) -> tuple[dict[str, weights.Projection], weights.Projection]:
        """MultiHeadAttention's query/key/value and out_proj: drawn, or a trained layer's when given."""
        if not self.fused_override:
            return cache.fused(*self.draw)
        o = {k: v.to(self.device, self.dtype) for k, v in self.fused_override.items()}
        return ({r: weights.Projection(o[f"W_{r}"]) for r in weights.ROLES},
                weights.Projection(o["W_out"], o["b_out"]))


def _forward(stage: str, run: _Run, shared: dict, use_engine: bool, defer: bool = False) -> dict:
    """One stage's named tensors: its forward (core/stages/) run with the chapter's ops, or the engine's.

    The one place where the path is chosen. Both give the same numbers (tests/core/engine/).
    ``shared`` collects the trainable stage's Q, K, V and scores for the engine to reuse.
    ``defer``: the engine may leave some tensors deferred (core.engine.lazy) for the caller to
    compute after the stage is drawn (``_compute_deferred``).
    """
    cfg = run.config
    if stage == "simplified":
        return simplified.forward(run.x)
    if stage == "trainable":
        named = trainable.forward(run.x, run.qkv(), engine.SharedOps(run.x, shared) if use_engine else None)
        shared.update({k: named[k] for k in ("queries", "keys", "values", "attn_scores")})
        return named
    if stage == "causal":
        # same inputs, same weights (one draw, one override): the batch's copies are views of the trainable ones
        ops = engine.SharedOps(run.x, shared or None, reuse_scores=True) if use_engine else None
        return causal.forward(run.xb, run.qkv(), run.mask, run.dropout_mask(), cfg.dropout, ops)
    fqkv, out_proj = run.fused()
    if not use_engine:
        heads, _stacked = run.heads()
        return multihead.forward(run.xb, heads, fqkv, out_proj, cfg.num_heads, run.mask)
    # MultiHeadAttention on screen before the trainable stage projects its Q, K, V (the trainable
    # stage's, same weights) itself, V with the context vectors when deferred; the trainable
    # stage takes them later
    shares = not run.overrides and not run.fused_override and cache.same_first_layers(*run.draw)
    additive = cache.additive_mask(run.x.shape[0], cfg.causal, run.device, run.dtype)
    ops = engine.EngineOps(run.x, shared if shares else None, cfg.causal, additive, defer)
    named = {**engine.wrapper(run.xb, run.heads, run.mask, cfg.num_heads, cfg.head_dim, cfg.qkv_bias),
             **multihead.fused(run.xb, fqkv, out_proj, cfg.num_heads, run.mask, ops)}
    ops.forget()                        # no reference cycle: the trace's buffers are freed with it
    return named


def _compute_deferred(stage: dict[str, Intermediate]) -> None:
    """Compute a stage's deferred tensors now (on this thread), so the trace holds them ready."""
    for item in stage.values():
        if isinstance(item.source, Lazy) and item.source.deferred:
            item.tensor


# What each stage's forward reads from another: the engine reuses the trainable stage's Q, K, V
# and scores in the causal stage, so it is computed after it. MultiHeadAttention reuses only
# Q, K, V, which it projects itself when it comes first (and the trainable stage then reuses).
NEEDS: dict[str, tuple[str, ...]] = {"simplified": (), "trainable": (), "causal": ("trainable",),
                                     "multihead": ()}


def stage_order(first: tuple[str, ...] | str = ()) -> tuple[str, ...]:
    """Every stage, those in ``first`` (with what they need, in chapter order) ahead of the rest."""
    first = (first,) if isinstance(first, str) else tuple(first)
    wanted = {s for f in first for s in (f, *NEEDS.get(f, ()))}
    return tuple(s for s in STAGES if s in wanted) + tuple(s for s in STAGES if s not in wanted)


def _prepare(config: AttentionConfig, inputs: Inputs | None, weights_override: dict | None,
             multihead_override: dict | None = None):
    from core.config import ConfigError

    inp = inputs if inputs is not None else resolve_inputs(config)
    if inp.width != config.d_in:
        raise ConfigError("d_in", f"the inputs have {inp.width} values per token but d_in is {config.d_in}")
    inp.check_values()
    device, note = resolve_device(config.device)
    dtype = DTYPES[config.dtype]
    num_tokens = len(inp.tokens)
    x = inp.shared_tensor(dtype, device)                                      # (T, d_in)
    # The book stacks copies: torch.stack((inputs, inputs)). expand is a copy-free view.
    xb = x.unsqueeze(0).expand(config.batch, num_tokens, config.d_in)         # (T, d_in) -> (b, T, d_in)
    mask = cache.causal_mask(num_tokens, config.causal, device, dtype)        # (T, T), shared
    run = _Run(config, x, xb, mask, device, dtype, _check_overrides(weights_override, config),
               _check_multihead(multihead_override, config))
    return inp, run, note


def build_trace_in_steps(config: AttentionConfig, inputs: Inputs | None = None,
                         first: tuple[str, ...] | str = (), weights_override: dict | None = None,
                         multihead_override: dict | None = None, use_engine: bool = True) -> Iterator[Trace]:
    """The trace in two parts: first the stages in ``first`` (and what they need), then all.

    Yields a partial Trace holding only those stages (what the window draws first), then the
    full one, which is ``build_trace``'s: the same forwards run on the same inputs, weights and
    shared Q/K/V, only in another order (tests/core/test_trace.py checks they are equal). The
    caller may stop after the first (a newer change came). Raises ConfigError like build_trace.
    """
    started = time.perf_counter()
    inp, run, note = _prepare(config, inputs, weights_override, multihead_override)
    order = stage_order(first)
    head = {s for f in ((first,) if isinstance(first, str) else first) for s in (f, *NEEDS.get(f, ()))}
    result: dict[str, dict[str, Intermediate]] = {}
    shared: dict[str, torch.Tensor] = {}
    notes = (note,) if note else ()

    def snapshot() -> Trace:
        if run.device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = (time.perf_counter() - started) * 1000.0
        ordered = {s: result[s] for s in STAGES if s in result}   # the chapter's order, whatever the run's
        return Trace(config, inp, run.device, ordered, elapsed, notes, bool(run.fused_override))

    for i, stage in enumerate(order):
        with torch.no_grad():
            # the visible stages may defer what their step does not draw (MultiHeadAttention's
            # V and context vectors when its weights are on screen): computed once delivered
            result[stage] = _wrap(stage, _forward(stage, run, shared, use_engine, defer=stage in head),
                                  config.batch, inp.labels)
        if head and stage in head and not any(s in head for s in order[i + 1:]):
            if i + 1 < len(order):
                yield snapshot()                  # the visible stage(s): draw them now
            for s in head:                        # then what they deferred, before any other stage
                _compute_deferred(result[s])
    yield snapshot()


def build_trace(config: AttentionConfig, inputs: Inputs | None = None,
                only: tuple[str, ...] = STAGES, weights_override: dict | None = None,
                multihead_override: dict | None = None, use_engine: bool = True) -> Trace:
    """Compute the stages in ``only`` (all by default) for ``config``.

    ``inputs`` overrides the config's embeddings source (the GUI's edited table); its width
    must equal config.d_in. ``weights_override``: edited W_query/W_key/W_value of the trainable
    and causal stages; ``multihead_override``: all five weights of the fused MultiHeadAttention
    (the "multihead" stage's W_query, W_key, W_value, W_out, b_out, e.g. a trained layer's).
    Raises ConfigError for problems with the inputs or weights.
    ``use_engine``: the tuned paths of core.engine (default) or the stages' plain forwards.
    """
    started = time.perf_counter()
    inp, run, note = _prepare(config, inputs, weights_override, multihead_override)
    result: dict[str, dict[str, Intermediate]] = {}
    shared: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for stage in STAGES:
            if stage in only:
                result[stage] = _wrap(stage, _forward(stage, run, shared, use_engine), config.batch, inp.labels)
    if run.device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - started) * 1000.0
    return Trace(config, inp, run.device, result, elapsed, (note,) if note else (), bool(run.fused_override))
