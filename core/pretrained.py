"""Stage 5, pretrained: the chapter's attention steps inside the real all-MiniLM-L6-v2.

The stage itself (its terms, the chapter's forward, code lines and inspector rules) is
core/stages/pretrained.py; this module is the builder around it: it loads the checkpoint
(core.minilm), tokenises, runs the layers before the chosen one and wraps the stage's
tensors as a trace. BERT has no causal mask: the mask is all ones for one sentence.

``build_pretrained(config)`` returns a trace with the intermediates under DESIGN.md's
names (plus ``token_ids``, the ``mask``, and, as options, the renormalised weights without
[CLS]/[SEP] and the rest of the layer). ``gallery(text)`` gives every head's weights.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from core import minilm
from core.config import ConfigError
from core.head_scores import HeadScores, head_scores, special_masks
from core.device import resolve_device
from core.pretrained_config import MAX_PIECES, NUM_HEADS, NUM_LAYERS, PretrainedConfig
from core.trace import Intermediate, TraceLookup, axis_labels
from core.stages import pretrained as stage_file
from core.stages.schema import Term

STAGE = "pretrained"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


# The stage's vocabulary lives in the stage table (core/stages/pretrained.py).
VOCABULARY: dict[str, Term] = stage_file.TERMS
PER_HEAD = stage_file.PER_HEAD
# the chapter's forward of the stage, read from its stage file (no second copy here)
attention, rest_of_layer, without_special = stage_file.attention, stage_file.rest_of_layer, stage_file.without_special


def embed(emb: minilm.Embeddings, ids: torch.Tensor, eps: float) -> torch.Tensor:
    """The model's embeddings for ``ids`` (core.stages.pretrained.embed with the checkpoint's tables)."""
    return stage_file.embed(emb.word, emb.position, emb.token_type, emb.ln_weight, emb.ln_bias, ids, eps)


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
class PretrainedTrace(TraceLookup):
    """The pretrained stage's intermediates, shaped like core.trace.Trace (export reads it)."""

    config: PretrainedConfig
    pieces: minilm.Pieces
    device: str
    stages: dict[str, dict[str, Intermediate]]    # {"pretrained": name -> intermediate}
    compute_ms: float
    notes: tuple[str, ...] = ()

    def _key(self, key) -> tuple[str, str]:
        return key if isinstance(key, tuple) else (STAGE, key)      # a bare name is this stage's

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
        named: dict[str, torch.Tensor] = {"token_ids": enc.ids}
        named.update(stage_file.forward(x, w, model.config.num_heads, enc.mask, enc.special,
                                   model.config.layer_norm_eps, config.hide_special, config.full_layer))
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

    def scores(self) -> HeadScores:
        """Every head's previous-token share, share on [CLS] and on [SEP], and entropy
        (core.head_scores), from the model's own weights ([CLS]/[SEP] kept)."""
        cls, sep = special_masks(self.pieces.pieces)
        return head_scores(self.attn_weights, cls, sep)


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


def trace_head_scores(trace: PretrainedTrace) -> HeadScores:
    """The scores (core.head_scores) of the heads in a trace's attn_weights: (12,) for an
    all-heads trace, (1,) for a one-head trace."""
    item = trace[STAGE, "attn_weights"]
    weights = item.tensor if item.axes[0] == "head" else item.tensor.unsqueeze(0)    # (h, T, T)
    cls, sep = special_masks(trace.pieces.pieces)
    return head_scores(weights.cpu(), cls, sep)


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
