"""The trace: every intermediate of every stage for one config, in the chapter's order.

``build_trace(config)`` draws the weights as the book does, runs the stage functions and
wraps each tensor with its vocabulary entry (symbol, formula, axes and axis labels). The
trace is read-only: look intermediates up with ``trace["causal", "attn_weights"]``.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from core import stages, steps, weights
from core.config import AttentionConfig
from core.device import resolve_device
from core.lazy import Lazy
from core.inputs import Inputs, resolve_inputs
from core.vocabulary import STAGES, VOCABULARY, Term

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True, eq=False)
class Intermediate:
    """One named tensor of the trace with what a view needs to label it.

    A few intermediates that are a cheap, exact function of another (e.g. the multi-head
    masked scores, or the wrapper that the fused path does not need) are *derived*: their
    tensor is computed on first access and then kept. ``is_ready`` tells whether it was.
    """

    stage: str
    name: str
    source: torch.Tensor | Lazy
    term: Term
    axes: tuple[str, ...]                 # axis kinds, e.g. ("batch", "head", "query", "key")
    labels: tuple[tuple[str, ...], ...]   # one label per index along each axis
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def tensor(self) -> torch.Tensor:
        if isinstance(self.source, torch.Tensor):
            return self.source
        if "tensor" not in self._cache:
            with self.source.lock:
                if "tensor" not in self._cache:
                    self._cache["tensor"] = self.source.compute()
        return self._cache["tensor"]

    @property
    def is_ready(self) -> bool:
        return isinstance(self.source, torch.Tensor) or "tensor" in self._cache

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
        """A read-only CPU array (cached): on the CPU it shares the tensor's memory (no 50 MB
        copy per 1024-token × 12-head intermediate; nothing changes a trace tensor in place)."""
        if "np" not in self._cache:
            t = self.tensor.detach()
            arr = t.numpy() if t.device.type == "cpu" else t.to("cpu").numpy()
            arr = arr.view()                     # our own read-only view, whoever else holds the tensor
            arr.setflags(write=False)
            self._cache["np"] = arr
        return self._cache["np"]

    def lead_axes(self) -> int:
        """How many leading (batch/head) axes come before the displayed 2-D (or 1-D) slice."""
        return max(self.tensor.dim() - 2, 0)


@dataclass(frozen=True, eq=False)
class Trace:
    config: AttentionConfig
    inputs: Inputs
    device: str                                   # the device actually used ("cpu", "cuda")
    stages: dict[str, dict[str, Intermediate]]    # stage -> name -> intermediate, in order
    compute_ms: float
    notes: tuple[str, ...] = ()                   # e.g. "cuda is not available; using cpu"
    multihead_given: bool = False                 # stage 4's fused weights came from multihead_override

    def __getitem__(self, key: tuple[str, str]) -> Intermediate:
        stage, name = key
        return self.stages[stage][name]

    def __contains__(self, key) -> bool:
        stage, name = key
        return stage in self.stages and name in self.stages[stage]

    def __iter__(self) -> Iterator[Intermediate]:
        for stage in self.stages.values():
            yield from stage.values()

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.inputs.tokens

    @property
    def labels(self) -> tuple[str, ...]:
        return self.inputs.labels


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
    out = {}
    for name, tensor in named.items():
        term = VOCABULARY[stage][name]
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


@functools.lru_cache(maxsize=4)
def _causal_mask(num_tokens: int, causal: bool, device: str, dtype: torch.dtype) -> torch.Tensor:
    """The (T, T) mask, built once per size: 4 MB at 1024 tokens, read-only like every trace tensor."""
    return steps.causal_mask(num_tokens, causal, device=device, dtype=dtype)


@functools.lru_cache(maxsize=4)
def _additive_mask(num_tokens: int, causal: bool, device: str, dtype: torch.dtype) -> torch.Tensor:
    """0 kept / −∞ hidden, (T, T): what the multi-head softmax adds to the scaled scores."""
    return steps.additive_mask(_causal_mask(num_tokens, causal, device, dtype))


@functools.lru_cache(maxsize=1)
def _dropout_keep(shape: tuple[int, ...], p: float, seed: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """The (b, T, T) keep mask, drawn on the CPU as the book draws it, then moved (kept for the next trace)."""
    return weights.draw_dropout_mask(shape, p, seed).to(device, dtype)


# Weights moved to the trace's device and dtype are kept too (the draws themselves are cached in
# core.weights): on a GPU, copying ~40 weight matrices per parameter change costs more than the trace.
@functools.lru_cache(maxsize=8)
def _qkv_on(init: str, seed: int, d_in: int, d_out: int, bias: bool, device: str,
            dtype: torch.dtype) -> dict[str, weights.Projection]:
    drawn = weights.draw_qkv(init, seed, d_in, d_out, bias)
    return {r: p.to(device, dtype) for r, p in drawn.items()}


@functools.lru_cache(maxsize=4)
def _wrapper_on(init: str, seed: int, d_in: int, head_dim: int, num_heads: int, bias: bool, device: str,
                dtype: torch.dtype) -> tuple[list[dict[str, weights.Projection]], dict[str, torch.Tensor]]:
    heads = weights.draw_wrapper_heads(init, seed, d_in, head_dim, num_heads, bias)
    heads = [{r: p.to(device, dtype) for r, p in h.items()} for h in heads]
    return heads, stages.stack_heads(heads)


@functools.lru_cache(maxsize=8)
def _same_first_layers(*draw: object) -> bool:
    """Whether MultiHeadAttention's W_query, W_key, W_value (and biases) are the trainable stage's.

    draw: (init, seed, d_in, d_out, bias, device, dtype), as _qkv_on and _fused_on take them.
    """
    mine = _qkv_on(*draw)
    fused, _out = _fused_on(*draw)

    def same(a, b) -> bool:
        return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
    return all(same(mine[r].W, fused[r].W) and same(mine[r].b, fused[r].b) for r in weights.ROLES)


@functools.lru_cache(maxsize=4)
def _fused_on(init: str, seed: int, d_in: int, d_out: int, bias: bool, device: str,
              dtype: torch.dtype) -> tuple[dict[str, weights.Projection], weights.Projection]:
    qkv, out_proj = weights.draw_fused(init, seed, d_in, d_out, bias)
    return {r: p.to(device, dtype) for r, p in qkv.items()}, out_proj.to(device, dtype)


def build_trace(config: AttentionConfig, inputs: Inputs | None = None,
                only: tuple[str, ...] = STAGES, weights_override: dict | None = None,
                multihead_override: dict | None = None) -> Trace:
    """Compute the stages in ``only`` (all by default) for ``config``.

    ``inputs`` overrides the config's embeddings source (the GUI's edited table); its width
    must equal config.d_in. ``weights_override``: edited W_query/W_key/W_value of the trainable
    and causal stages; ``multihead_override``: all five weights of the fused MultiHeadAttention
    (the "multihead" stage's W_query, W_key, W_value, W_out, b_out, e.g. a trained layer's).
    Raises ConfigError for problems with the inputs or weights.
    """
    from core.config import MAX_ABS_EMBEDDING, ConfigError

    started = time.perf_counter()
    inp = inputs if inputs is not None else resolve_inputs(config)
    if inp.width != config.d_in:
        raise ConfigError("d_in", f"the inputs have {inp.width} values per token but d_in is {config.d_in}")
    if not inp.max_abs <= MAX_ABS_EMBEDDING:  # also catches nan
        raise ConfigError("embeddings", f"every embedding value must be a finite number between "
                                        f"-{MAX_ABS_EMBEDDING:g} and {MAX_ABS_EMBEDDING:g}")
    device, note = resolve_device(config.device)
    dtype = DTYPES[config.dtype]
    token_labels = inp.labels
    num_tokens = len(inp.tokens)
    b = config.batch
    x = inp.shared_tensor(dtype, device)                                      # (T, d_in)
    # The book stacks copies: torch.stack((inputs, inputs)). expand is a copy-free view.
    xb = x.unsqueeze(0).expand(b, num_tokens, config.d_in)                    # (b, T, d_in)
    mask = _causal_mask(num_tokens, config.causal, device, dtype)                 # (T, T), shared

    overrides = _check_overrides(weights_override, config)
    fused_override = _check_multihead(multihead_override, config)

    def qkv(d_out):
        on = _qkv_on(config.init, config.seed, config.d_in, d_out, config.qkv_bias, device, dtype)
        return {r: weights.Projection(overrides[r].to(device, dtype), p.b) if r in overrides else p
                for r, p in on.items()}

    result: dict[str, dict[str, Intermediate]] = {}
    # The causal stage and MultiHeadAttention start with the very projections of the trainable
    # stage (same inputs; same seed, so the same first three layers are drawn): when that stage
    # ran, they use its Q, K, V (and the causal stage its scores) instead of computing them again.
    shared = None
    with torch.no_grad():
        for stage in STAGES:
            if stage not in only:
                continue
            if stage == "simplified":
                named = stages.simplified(x)
            elif stage == "trainable":
                named = stages.trainable(x, qkv(config.d_out))
                shared = {k: named[k] for k in ("queries", "keys", "values", "attn_scores")}
            elif stage == "causal":
                keep = _dropout_keep((b, num_tokens, num_tokens), config.dropout, config.dropout_seed, device, dtype)
                named = stages.causal(xb, qkv(config.d_out), mask, keep, config.dropout, shared)
            else:
                heads, stacked = _wrapper_on(config.init, config.seed, config.d_in, config.head_dim,
                                             config.num_heads, config.qkv_bias, device, dtype)
                draw = (config.init, config.seed, config.d_in, config.d_out, config.qkv_bias, device, dtype)
                fqkv, out_proj = _fused_on(*draw)
                if fused_override:      # a trained layer's weights replace the drawn ones
                    fqkv = {r: weights.Projection(fused_override[f"W_{r}"].to(device, dtype)) for r in weights.ROLES}
                    out_proj = weights.Projection(fused_override["W_out"].to(device, dtype),
                                                  fused_override["b_out"].to(device, dtype))
                additive = _additive_mask(num_tokens, config.causal, device, dtype)
                named = {
                    **stages.wrapper(xb, heads, mask, stacked),
                    **stages.fused(xb, fqkv, out_proj, config.num_heads, mask, config.causal, additive,
                                   shared if not (overrides or fused_override) and _same_first_layers(*draw)
                                   else None),
                }
            result[stage] = _wrap(stage, named, b, token_labels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - started) * 1000.0
    return Trace(config, inp, device, result, elapsed, (note,) if note else (), bool(fused_override))
