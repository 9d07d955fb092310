"""The frozen, validated options of the pretrained stage (torch-free: the GUI checks them first).

The model's sizes are fixed (all-MiniLM-L6-v2: 6 layers × 12 heads, at most 512 pieces);
they are repeated here so a bad layer or head is refused before the 90 MB model is read.
core.pretrained checks them against the loaded config.json.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.config import DEVICES, DTYPES, MAX_TEXT_CHARS, ConfigError

NUM_LAYERS = 6
NUM_HEADS = 12
D_MODEL = 384
MAX_PIECES = 512       # position embeddings of the checkpoint: [CLS] and [SEP] included
# The ready example: layer 0 has a previous-token head; "him" looks back at "dog" in layers 2–3.
EXAMPLE_TEXT = "The old dog chased the quick fox which bit him"


@dataclass(frozen=True)
class PretrainedConfig:
    """What determines one pretrained trace. Field names match the CLI options."""

    text: str = EXAMPLE_TEXT
    layer: int = 0                 # encoder layer, 0..5 (counted from 0)
    head: int | None = None        # one head 0..11 (its 2-D steps), or None for all 12 heads
    hide_special: bool = False     # also show attn_weights without [CLS]/[SEP], rows renormalised
    full_layer: bool = False       # also compute residual + LayerNorm, feed-forward, LayerNorm
    device: str = "auto"           # "auto" (cuda when available), "cpu" or "cuda"
    dtype: str = "float32"         # "float32" (the checkpoint's) or "float64"

    def __post_init__(self) -> None:
        validate(self)

    # What the chapter's views read off a config (core.trace.Trace's AttentionConfig has
    # them too): the model's fixed sizes, one sentence (no batch).
    num_heads = property(lambda self: NUM_HEADS, doc="heads per layer (12)")
    d_in = property(lambda self: D_MODEL, doc="width entering the layer (384)")
    d_out = property(lambda self: D_MODEL, doc="width of Q, K, V and the output (384)")
    head_dim = property(lambda self: D_MODEL // NUM_HEADS, doc="32: the scale is 1/√32")
    batch = property(lambda self: 1, doc="one sentence")
    qkv_bias = property(lambda self: True, doc="BERT's projections have biases")

    def replace(self, **changes) -> "PretrainedConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields, and the model they ran on (the manifest's config)."""
        return {"model": "all-MiniLM-L6-v2", **dataclasses.asdict(self)}


def _check_int(cfg: PretrainedConfig, field: str, count: int) -> None:
    value = getattr(cfg, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be a whole number from 0 to {count - 1}, got {value!r}")
    if not 0 <= value < count:
        raise ConfigError(field, f"must be from 0 to {count - 1} (the model has {count} {field}s, "
                                 f"counted from 0), got {value}")


def validate(cfg: PretrainedConfig) -> None:
    """Raise ConfigError for the first invalid field. The 512-piece limit is checked after
    tokenising (core.pretrained), as only the tokenizer knows how many pieces a text makes."""
    if not isinstance(cfg.text, str):
        raise ConfigError("text", f"must be a string, got {type(cfg.text).__name__}")
    if not cfg.text.strip():
        raise ConfigError("text", "is empty; type at least one word")
    if len(cfg.text) > MAX_TEXT_CHARS:
        raise ConfigError("text", f"is {len(cfg.text)} characters long; the limit is {MAX_TEXT_CHARS}")
    from core.tokens import not_text   # torch-free; bytes that are not UTF-8 fail in the tokenizer
    if not_text(cfg.text):
        raise ConfigError("text", not_text(cfg.text))
    _check_int(cfg, "layer", NUM_LAYERS)
    if cfg.head is not None:
        _check_int(cfg, "head", NUM_HEADS)
    for field in ("hide_special", "full_layer"):
        if not isinstance(getattr(cfg, field), bool):
            raise ConfigError(field, f"must be true or false, got {getattr(cfg, field)!r}")
    if cfg.device not in DEVICES:
        raise ConfigError("device", f"must be one of {', '.join(DEVICES)}; got {cfg.device!r}")
    if cfg.dtype not in DTYPES:
        raise ConfigError("dtype", f"must be one of {', '.join(DTYPES)}; got {cfg.dtype!r}")
