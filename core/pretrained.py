"""Stage 5, pretrained: the chapter's attention steps inside the real all-MiniLM-L6-v2.

The same lines as the chapter's MultiHeadAttention (Q = X W_q + b_q, view into heads,
Q Kᵀ, ÷ √hd, softmax, A V, merge, out_proj), with the checkpoint's weights for one encoder
layer; the hidden states entering that layer are the model's own (embeddings, then the
layers before it). BERT has no causal mask: every token may attend to every token, so the
mask is all ones for one sentence (it only hides padding when sentences are batched).

``build_pretrained(config)`` returns a trace with the intermediates under DESIGN.md's
names (plus ``token_ids``, the ``mask``, and, as options, the renormalised weights without
[CLS]/[SEP] and the rest of the layer). ``gallery(text)`` gives every head's weights.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from core import minilm
from core.config import ConfigError
from core.device import resolve_device
from core.pretrained_config import MAX_PIECES, NUM_HEADS, NUM_LAYERS, PretrainedConfig
from core.trace import Intermediate, axis_labels
from core.vocabulary import Term

STAGE = "pretrained"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _t(symbol, formula, meaning, *axes) -> Term:
    return Term(symbol, formula, meaning, tuple(axes))


# The stage's vocabulary (for core.vocabulary's table). Axes are those of the all-heads trace;
# with one head chosen, the "head" axis is dropped from the per-head tensors.
VOCABULARY: dict[str, Term] = {
    "token_ids": _t("ids", "tokenizer(text)", "WordPiece ids, [CLS] first and [SEP] last", "token"),
    "inputs": _t("X", "X = hidden states entering the layer", "the layer's input: embeddings (layer 0) or the previous layer's output", "token", "in"),
    "W_query": _t("W_q", "W_q = query.weight.T", "query projection of all heads side by side (from the checkpoint)", "in", "out"),
    "W_key": _t("W_k", "W_k = key.weight.T", "key projection of all heads side by side (from the checkpoint)", "in", "out"),
    "W_value": _t("W_v", "W_v = value.weight.T", "value projection of all heads side by side (from the checkpoint)", "in", "out"),
    "b_query": _t("b_q", "b_q", "query bias", "out"),
    "b_key": _t("b_k", "b_k", "key bias", "out"),
    "b_value": _t("b_v", "b_v", "value bias", "out"),
    "queries": _t("Q⁽ʰ⁾", "(X W_q + b_q).view(T, h, hd).transpose", "per-head queries", "head", "token", "hd"),
    "keys": _t("K⁽ʰ⁾", "(X W_k + b_k).view(T, h, hd).transpose", "per-head keys", "head", "token", "hd"),
    "values": _t("V⁽ʰ⁾", "(X W_v + b_v).view(T, h, hd).transpose", "per-head values", "head", "token", "hd"),
    "attn_scores": _t("ω⁽ʰ⁾", "Q⁽ʰ⁾ K⁽ʰ⁾ᵀ", "per-head scores", "head", "query", "key"),
    "scaled_scores": _t("ω⁽ʰ⁾/√hd", "Q⁽ʰ⁾ K⁽ʰ⁾ᵀ / √32", "per-head scores scaled by 1/√hd", "head", "query", "key"),
    "mask": _t("M", "M = attention_mask (all ones)", "1 where a query may attend: BERT has no causal mask, and one sentence has no padding", "query", "key"),
    "attn_weights": _t("A⁽ʰ⁾", "softmax(ω⁽ʰ⁾/√hd)", "per-head attention weights", "head", "query", "key"),
    "attn_weights_no_special": _t("A⁽ʰ⁾ w/o [CLS],[SEP]", "A⁽ʰ⁾ without [CLS]/[SEP], rows renormalised",
                                  "display option: [CLS]/[SEP] rows and columns hidden, each row divided by what is left", "head", "query", "key"),
    "context_heads": _t("Z⁽ʰ⁾", "A⁽ʰ⁾ V⁽ʰ⁾", "per-head context vectors", "head", "token", "hd"),
    "context_concat": _t("Z_cat", "Z⁽ʰ⁾.transpose.view(T, d_out)", "heads merged back side by side", "token", "out"),
    "W_out": _t("W_o", "W_o = attention.output.dense.weight.T", "output projection (out_proj)", "out", "out"),
    "b_out": _t("b_o", "b_o", "output projection bias", "out"),
    "context_vecs": _t("Z", "Z = Z_cat W_o + b_o", "the attention's output (after out_proj, before the residual)", "token", "out"),
    "attn_residual": _t("X + Z", "X + Z", "full layer: the residual connection around attention", "token", "out"),
    "attn_normed": _t("LN(X + Z)", "LayerNorm(X + Z)", "full layer: LayerNorm after attention", "token", "out"),
    "ff_hidden": _t("H", "GELU(LN₁ W_ff_in + b)", "full layer: feed-forward hidden units (1536)", "token", "ff"),
    "ff_out": _t("F", "H W_ff_out + b", "full layer: feed-forward output", "token", "out"),
    "layer_output": _t("Y", "LayerNorm(LN₁ + F)", "full layer: the layer's output (the next layer's inputs)", "token", "out"),
}
PER_HEAD = ("queries", "keys", "values", "attn_scores", "scaled_scores", "attn_weights",
            "attn_weights_no_special", "context_heads")


# ---- the forward, as the chapter writes it -----------------------------------------------

def embed(emb: minilm.Embeddings, ids: torch.Tensor, eps: float) -> torch.Tensor:
    """BERT's embeddings: word + position + token type (all 0: one sentence), LayerNorm."""
    num_tokens = ids.shape[0]
    positions = torch.arange(num_tokens, device=ids.device)
    x = emb.word[ids] + emb.position[positions] + emb.token_type[0]          # (T, d_model)
    return F.layer_norm(x, x.shape[-1:], emb.ln_weight, emb.ln_bias, eps)


def attention(x: torch.Tensor, w: minilm.LayerWeights, num_heads: int, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """One layer's self-attention, every intermediate kept (the chapter's MultiHeadAttention)."""
    num_tokens, d_out = x.shape[0], w.W_query.shape[1]
    head_dim = d_out // num_heads
    queries = x @ w.W_query + w.b_query                                       # (T, d_in) -> (T, d_out)
    keys = x @ w.W_key + w.b_key                                              # (T, d_in) -> (T, d_out)
    values = x @ w.W_value + w.b_value                                        # (T, d_in) -> (T, d_out)
    # (T, d_out) -> (T, h, hd) -> (h, T, hd)
    queries = queries.view(num_tokens, num_heads, head_dim).transpose(0, 1)
    keys = keys.view(num_tokens, num_heads, head_dim).transpose(0, 1)
    values = values.view(num_tokens, num_heads, head_dim).transpose(0, 1)
    attn_scores = queries @ keys.transpose(1, 2)                              # (h, T, hd) @ (h, hd, T) -> (h, T, T)
    scaled_scores = attn_scores / math.sqrt(head_dim)                         # (h, T, T), ÷ √32
    # a new tensor (not masked_fill_): the learner still sees the scaled scores
    masked = scaled_scores.masked_fill(mask == 0, float("-inf"))              # (h, T, T)
    attn_weights = torch.softmax(masked, dim=-1)                              # (h, T, T), rows sum to 1
    context_heads = attn_weights @ values                                     # (h, T, T) @ (h, T, hd) -> (h, T, hd)
    context_concat = context_heads.transpose(0, 1).reshape(num_tokens, d_out)  # (h, T, hd) -> (T, h, hd) -> (T, d_out)
    context_vecs = context_concat @ w.W_out + w.b_out                         # (T, d_out) -> (T, d_out)
    return {
        "W_query": w.W_query, "W_key": w.W_key, "W_value": w.W_value,
        "b_query": w.b_query, "b_key": w.b_key, "b_value": w.b_value,
        "queries": queries, "keys": keys, "values": values,
        "attn_scores": attn_scores, "scaled_scores": scaled_scores, "mask": mask,
        "attn_weights": attn_weights, "context_heads": context_heads, "context_concat": context_concat,
        "W_out": w.W_out, "b_out": w.b_out, "context_vecs": context_vecs,
    }


def rest_of_layer(x: torch.Tensor, context_vecs: torch.Tensor, w: minilm.LayerWeights, eps: float) -> dict[str, torch.Tensor]:
    """What BERT does after attention: residual + LayerNorm, feed-forward (GELU), residual + LayerNorm."""
    attn_residual = x + context_vecs                                          # (T, d_model)
    attn_normed = F.layer_norm(attn_residual, x.shape[-1:], w.ln_attn_weight, w.ln_attn_bias, eps)
    ff_hidden = F.gelu(attn_normed @ w.W_ff_in + w.b_ff_in)                   # (T, d_model) -> (T, d_ff)
    ff_out = ff_hidden @ w.W_ff_out + w.b_ff_out                              # (T, d_ff) -> (T, d_model)
    layer_output = F.layer_norm(attn_normed + ff_out, x.shape[-1:], w.ln_out_weight, w.ln_out_bias, eps)
    return {"attn_residual": attn_residual, "attn_normed": attn_normed, "ff_hidden": ff_hidden,
            "ff_out": ff_out, "layer_output": layer_output}


def without_special(attn_weights: torch.Tensor, special: torch.Tensor) -> torch.Tensor:
    """[CLS]/[SEP] rows and columns removed, each row divided by its remaining sum.

    BERT's heads park much of their weight on [CLS] and [SEP] (a "no-op" target); hiding them
    and renormalising shows how the rest is shared among the words. Display only: the model
    itself used attn_weights.
    """
    keep = ~special
    kept = attn_weights[..., keep, :][..., keep]                              # (…, T, T) -> (…, T', T')
    return kept / kept.sum(dim=-1, keepdim=True)


# ---- running the model --------------------------------------------------------------------

@dataclass(frozen=True)
class Encoded:
    pieces: minilm.Pieces
    ids: torch.Tensor        # (T,) int64 on the device
    special: torch.Tensor    # (T,) bool on the device
    mask: torch.Tensor       # (T, T) ones in the dtype


def encode(model: minilm.MiniLM, text: str, device: str, dtype: torch.dtype) -> Encoded:
    """Tokenise and check the model's 512-piece limit (ConfigError naming ``text``)."""
    pieces = model.tokenize(text)
    limit = min(MAX_PIECES, model.config.max_pieces)
    if len(pieces) > limit:
        raise ConfigError("text", f"makes {len(pieces)} WordPiece pieces with [CLS] and [SEP]; "
                                  f"the model takes at most {limit}")
    if len(pieces) <= 2:
        raise ConfigError("text", "has no word the tokenizer keeps; type at least one word")
    ids = torch.tensor(pieces.ids, dtype=torch.long, device=device)
    special = torch.tensor(pieces.special, dtype=torch.bool, device=device)
    # One sentence: no padding, and BERT reads in both directions, so every query sees every key.
    mask = torch.ones(len(pieces), len(pieces), dtype=dtype, device=device)
    return Encoded(pieces, ids, special, mask)


def _check_model(model: minilm.MiniLM) -> None:
    c = model.config
    if (c.num_layers, c.num_heads) != (NUM_LAYERS, NUM_HEADS):
        raise minilm.ModelMissing(f"{model.folder} holds a model with {c.num_layers} layers × {c.num_heads} "
                                  f"heads, not all-MiniLM-L6-v2's {NUM_LAYERS} × {NUM_HEADS}")


def hidden_states(model: minilm.MiniLM, enc: Encoded, upto: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """The hidden states entering layer ``upto`` (T, d_model)."""
    emb, layers = model.on(device, dtype)
    eps = model.config.layer_norm_eps
    x = embed(emb, enc.ids, eps)
    for w in layers[:upto]:
        named = attention(x, w, model.config.num_heads, enc.mask)
        x = rest_of_layer(x, named["context_vecs"], w, eps)["layer_output"]
    return x


@dataclass(frozen=True, eq=False)
class PretrainedTrace:
    """The pretrained stage's intermediates, shaped like core.trace.Trace (export reads it)."""

    config: PretrainedConfig
    pieces: minilm.Pieces
    device: str
    stages: dict[str, dict[str, Intermediate]]    # {"pretrained": name -> intermediate}
    compute_ms: float
    notes: tuple[str, ...] = ()

    def __getitem__(self, key) -> Intermediate:
        stage, name = key if isinstance(key, tuple) else (STAGE, key)
        return self.stages[stage][name]

    def __contains__(self, key) -> bool:
        stage, name = key if isinstance(key, tuple) else (STAGE, key)
        return stage in self.stages and name in self.stages[stage]

    def __iter__(self) -> Iterator[Intermediate]:
        for stage in self.stages.values():
            yield from stage.values()

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.pieces.pieces

    @property
    def labels(self) -> tuple[str, ...]:
        return self.pieces.labels


def _labels(kind: str, size: int, token_labels: tuple[str, ...]) -> tuple[str, ...]:
    if kind == "ff":
        return tuple(f"ff{i}" for i in range(size))
    if kind == "layer":
        return tuple(f"layer{i}" for i in range(size))
    return axis_labels(kind, size, token_labels)


def _wrap(named: dict[str, torch.Tensor], head: int | None, token_labels, kept_labels) -> dict[str, Intermediate]:
    out = {}
    for name, tensor in named.items():
        term = VOCABULARY[name]
        axes = term.axes
        if head is not None and name in PER_HEAD:
            tensor, axes = tensor[head], axes[1:]                            # (h, …) -> (…): the chosen head
        labels = tuple(kept_labels if (name == "attn_weights_no_special" and k in ("query", "key"))
                       else _labels(k, n, token_labels) for k, n in zip(axes, tensor.shape))
        out[name] = Intermediate(STAGE, name, tensor, term, axes, labels)
    return out


def build_pretrained(config: PretrainedConfig) -> PretrainedTrace:
    """Every intermediate of ``config.layer`` (one head or all) on the real model.

    Raises ConfigError (field ``text``) for a text over the model's limit and
    minilm.ModelMissing when the model package is not installed.
    """
    started = time.perf_counter()
    model = minilm.load()
    _check_model(model)
    device, note = resolve_device(config.device)
    dtype = DTYPES[config.dtype]
    with torch.no_grad():
        enc = encode(model, config.text, device, dtype)
        x = hidden_states(model, enc, config.layer, device, dtype)           # (T, d_model)
        _emb, layers = model.on(device, dtype)
        w = layers[config.layer]
        named: dict[str, torch.Tensor] = {"token_ids": enc.ids, "inputs": x}
        named.update(attention(x, w, model.config.num_heads, enc.mask))
        if config.hide_special:
            named["attn_weights_no_special"] = without_special(named["attn_weights"], enc.special)
        if config.full_layer:
            named.update(rest_of_layer(x, named["context_vecs"], w, model.config.layer_norm_eps))
        order = [n for n in VOCABULARY if n in named]                        # the chapter's order
        named = {n: named[n] for n in order}
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    labels = enc.pieces.labels
    kept = tuple(lab for lab, s in zip(labels, enc.pieces.special) if not s)
    notes = (note,) if note else ()
    if config.hide_special:
        notes += ("attn_weights_no_special: [CLS] and [SEP] hidden and every row renormalised "
                  "(a display option; the model used attn_weights)",)
    stage = _wrap(named, config.head, labels, kept)
    return PretrainedTrace(config, enc.pieces, device, {STAGE: stage},
                           (time.perf_counter() - started) * 1000.0, notes)


# ---- the head gallery and the heads worth a look ----------------------------------------

@dataclass(frozen=True, eq=False)
class Gallery:
    """Every head's attention weights for one text."""

    pieces: minilm.Pieces
    attn_weights: torch.Tensor     # (layers, heads, T, T), on the CPU

    @property
    def labels(self) -> tuple[str, ...]:
        return self.pieces.labels

    def no_special(self) -> tuple[torch.Tensor, tuple[str, ...]]:
        """(layers, heads, T', T') without [CLS]/[SEP], rows renormalised, and their labels."""
        special = torch.tensor(self.pieces.special)
        kept = tuple(lab for lab, s in zip(self.labels, self.pieces.special) if not s)
        return without_special(self.attn_weights, special), kept


def gallery(text: str, device: str = "auto", dtype: str = "float32") -> Gallery:
    """All 6 × 12 heads' attn_weights for ``text`` in one forward pass."""
    PretrainedConfig(text=text, device=device, dtype=dtype)                  # validates (ConfigError)
    model = minilm.load()
    _check_model(model)
    dev, _note = resolve_device(device)
    dt = DTYPES[dtype]
    with torch.no_grad():
        enc = encode(model, text, dev, dt)
        emb, layers = model.on(dev, dt)
        eps = model.config.layer_norm_eps
        x = embed(emb, enc.ids, eps)
        per_layer = []
        for w in layers:
            named = attention(x, w, model.config.num_heads, enc.mask)
            per_layer.append(named["attn_weights"])                          # (h, T, T)
            x = rest_of_layer(x, named["context_vecs"], w, eps)["layer_output"]
        weights = torch.stack(per_layer).to("cpu")                           # L × (h, T, T) -> (L, h, T, T)
    return Gallery(enc.pieces, weights)


@dataclass(frozen=True)
class HeadScore:
    layer: int
    head: int
    score: float


def previous_token_scores(g: Gallery) -> torch.Tensor:
    """(layers, heads): the mean weight a word puts on the word just before it.

    Only word pieces whose previous token is a word too ([CLS]/[SEP] excluded).
    """
    special = g.pieces.special
    rows = [i for i in range(1, len(special)) if not special[i] and not special[i - 1]]
    if not rows:
        raise ConfigError("text", "needs at least two words to look for a previous-token head")
    idx = torch.tensor(rows)
    return g.attn_weights[:, :, idx, idx - 1].mean(dim=-1)                   # (L, h, R) -> (L, h)


def query_key_scores(g: Gallery, query: str, key: str) -> torch.Tensor:
    """(layers, heads): the weight the piece ``query`` puts on ``key``, [CLS]/[SEP] hidden
    and rows renormalised (their first occurrence; the labels are unique pieces)."""
    weights, kept = g.no_special()
    for name, label in (("query", query), ("key", key)):
        if label not in kept:
            raise ConfigError(name, f"{label!r} is not one of the pieces {', '.join(kept)}")
    return weights[:, :, kept.index(query), kept.index(key)]                 # (L, h, T', T') -> (L, h)


def best_heads(scores: torch.Tensor, top: int = 3) -> list[HeadScore]:
    """The ``top`` (layer, head) pairs with the highest scores, best first."""
    flat = scores.flatten()
    order = torch.argsort(flat, descending=True)[:top]
    n_heads = scores.shape[1]
    return [HeadScore(int(i) // n_heads, int(i) % n_heads, float(flat[i])) for i in order]


def find_previous_token_head(g: Gallery) -> HeadScore:
    return best_heads(previous_token_scores(g), 1)[0]


def find_query_key_head(g: Gallery, query: str, key: str) -> HeadScore:
    return best_heads(query_key_scores(g, query, key), 1)[0]


# ---- measurements for `main.py bench` -----------------------------------------------------

def _rss_bytes() -> int | None:
    """This process's resident memory (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            import os
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def bench(repeats: int = 7, text: str = "The old dog chased the quick fox which bit him",
          device: str = "cpu") -> dict:
    """Model load time and memory, and forward times for one sentence (medians, seconds/ms).

    The first load (in this process) is the app's real cost: files read, tokenizer built,
    resident memory grown by ``load_rss_mb``. ``reload_median_s`` times reading the files again
    (from the page cache: a lower bound for a cold start). ``layer_trace_median_ms``: one
    layer's full trace (all heads, full layer, the layers before it run too); ``gallery_median_ms``:
    all 6 × 12 heads.
    """
    first_load = not minilm.is_loaded()
    rss_before = _rss_bytes()
    model = minilm.load()
    rss_after = _rss_bytes()
    reloads = []
    for _ in range(max(1, repeats // 2)):
        t0 = time.perf_counter()
        minilm.read_weights(model.folder, model.config)
        minilm.read_tokenizer(model.folder)
        reloads.append(time.perf_counter() - t0)
    cfg = PretrainedConfig(text=text, layer=3, head=None, full_layer=True, device=device)
    build_pretrained(cfg)                                                    # touches every weight page
    rss_forward = _rss_bytes()

    def median_ms(fn) -> float:
        fn()                                                                 # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000.0)
        return statistics.median(times)

    return {
        "model": minilm.MODEL_NAME,
        "pieces": len(model.tokenize(text)),
        "device": resolve_device(device)[0],
        "load_s": model.load_s if first_load else None,
        "load_in_this_call": first_load,
        "reload_median_s": statistics.median(reloads),
        "weights_mb": model.nbytes / 2**20,
        # safetensors maps the file: pages become resident as the forward first reads them
        "load_rss_mb": (rss_after - rss_before) / 2**20 if first_load and rss_before is not None else None,
        "rss_after_first_forward_mb": (rss_forward - rss_before) / 2**20 if first_load and rss_before is not None else None,
        "layer_trace_median_ms": median_ms(lambda: build_pretrained(cfg)),
        "gallery_median_ms": median_ms(lambda: gallery(text, device=device)),
        "repeats": repeats,
    }
