"""The frozen configuration of one attention trace, validated up front.

Every invalid value raises :class:`ConfigError` (a ``ValueError``) whose message names the
field and says what is allowed, so the CLI and the GUI can show it as it is.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

BOOK_TEXT = "Your journey starts with one step"

INITS = ("rand", "linear")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")

# Limits that keep a learner's typo from allocating the machine away. The memory guard
# (core.memory) refuses configs that fit these limits but not the machine.
MAX_TOKENS = 4096
MAX_TEXT_CHARS = 100_000
MAX_DIM = 8192
MAX_HEADS = 256
MAX_BATCH = 64
MAX_SEED = 2**63 - 1
MAX_PATH_CHARS = 4096      # PATH_MAX on Linux; a longer "path" is a paste gone wrong
# Embedding (and edited weight) values beyond this overflow float32 scores at the largest
# sizes (and are no values a learner means); the trace refuses them instead of showing inf and nan.
MAX_ABS_EMBEDDING = 1e6


class ConfigError(ValueError):
    """An invalid configuration value; ``field`` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class AttentionConfig:
    """Everything that determines a trace. Field names match the CLI options."""

    embeddings: str = "book"   # "book" (the chapter's 3-d vectors), "random", or a CSV path
    text: str = BOOK_TEXT      # tokenised into words and punctuation
    d_in: int = 3              # embedding width (3 for the book's vectors)
    d_out: int = 2             # projection width; all heads together in multi-head attention
    num_heads: int = 2         # heads of the multi-head stage; d_out % num_heads == 0
    init: str = "linear"       # "rand" (SelfAttention_v1) or "linear" (nn.Linear, v2 and later)
    seed: int = 123            # torch.manual_seed before the weights of each stage are drawn
    causal: bool = True        # mask future tokens in the causal and multi-head stages
    dropout: float = 0.0       # dropout rate on the causal attention weights, in [0, 1)
    dropout_seed: int = 123    # torch.manual_seed right before dropout is applied
    qkv_bias: bool = False     # bias in the query/key/value projections
    batch: int = 1             # copies of the inputs stacked (causal and multi-head stages)
    device: str = "auto"       # "auto" (cuda when available), "cpu" or "cuda"
    dtype: str = "float32"     # "float32" or "float64"

    def __post_init__(self) -> None:
        validate(self)

    @property
    def head_dim(self) -> int:
        return self.d_out // self.num_heads

    def replace(self, **changes) -> "AttentionConfig":
        """A new validated config with ``changes`` applied (raises ConfigError)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AttentionConfig":
        if not isinstance(data, dict):
            raise ConfigError("config", "expected a mapping of field names to values")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown field; known fields: {', '.join(sorted(known))}")
        return cls(**data)


def shown_value(value) -> str:
    """A value as a message shows it: huge numbers and long texts shortened to one readable line
    (str() of an int over 4,300 digits even raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"a {'negative ' if value < 0 else ''}number of about {digits} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def check_int(cfg, field: str, low: int, high: int, what: str = "") -> None:
    """A whole number (not a bool) in [low, high]; ``what`` follows the range in the message."""
    value = getattr(cfg, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be a whole number, got {shown_value(value)}")
    if not low <= value <= high:
        raise ConfigError(field, f"must be between {low} and {high}{what}, got {shown_value(value)}")


def _check_choice(cfg: AttentionConfig, field: str, allowed: tuple[str, ...]) -> None:
    value = getattr(cfg, field)
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(field, f"must be one of {', '.join(allowed)}; got {shown_value(value)}")


def check_bool(cfg, field: str) -> None:
    if not isinstance(getattr(cfg, field), bool):
        raise ConfigError(field, f"must be true or false, got {shown_value(getattr(cfg, field))}")


def validate(cfg: AttentionConfig) -> None:
    """Raise ConfigError for the first invalid field (checked in declaration order)."""
    from core.tokens import BOOK_TOKENS, not_text, tokenize  # torch-free: the GUI validates before torch loads

    if not isinstance(cfg.embeddings, str) or not cfg.embeddings.strip():
        raise ConfigError("embeddings", "must be 'book', 'random' or the path of a CSV file")
    if len(cfg.embeddings) > MAX_PATH_CHARS:
        raise ConfigError("embeddings", f"is {len(cfg.embeddings)} characters long; no file path is "
                                        f"longer than {MAX_PATH_CHARS}")
    if not isinstance(cfg.text, str):
        raise ConfigError("text", f"must be a string, got {type(cfg.text).__name__}")
    if len(cfg.text) > MAX_TEXT_CHARS:
        raise ConfigError("text", f"is {len(cfg.text)} characters long; the limit is {MAX_TEXT_CHARS}")
    if not_text(cfg.text):
        raise ConfigError("text", not_text(cfg.text))
    if not cfg.text.strip():
        raise ConfigError("text", "is empty; type at least one word")
    check_int(cfg, "d_in", 1, MAX_DIM)
    check_int(cfg, "d_out", 1, MAX_DIM)
    check_int(cfg, "num_heads", 1, MAX_HEADS)
    if cfg.d_out % cfg.num_heads:
        raise ConfigError(
            "num_heads",
            f"d_out ({cfg.d_out}) must be divisible by num_heads ({cfg.num_heads}); "
            f"try num_heads in {_divisors(cfg.d_out)}",
        )
    _check_choice(cfg, "init", INITS)
    check_int(cfg, "seed", 0, MAX_SEED)
    check_bool(cfg, "causal")
    if isinstance(cfg.dropout, bool) or not isinstance(cfg.dropout, (int, float)):
        raise ConfigError("dropout", f"must be a number in [0, 1), got {shown_value(cfg.dropout)}")
    if not 0.0 <= cfg.dropout < 1.0:    # also nan; compared as is (float() of a huge int overflows)
        raise ConfigError("dropout", f"must be in [0, 1) (0 keeps every weight), got {shown_value(cfg.dropout)}")
    check_int(cfg, "dropout_seed", 0, MAX_SEED)
    check_bool(cfg, "qkv_bias")
    check_int(cfg, "batch", 1, MAX_BATCH)
    _check_choice(cfg, "device", DEVICES)
    _check_choice(cfg, "dtype", DTYPES)
    tokens = tokenize(cfg.text)
    if not tokens:
        raise ConfigError("text", "has no words or punctuation to attend over")
    if len(tokens) > MAX_TOKENS:
        raise ConfigError("text", f"has {len(tokens)} tokens; the limit is {MAX_TOKENS}")
    if cfg.embeddings == "book" and tuple(tokens) != BOOK_TOKENS:
        raise ConfigError("embeddings", "'book' has vectors only for the book's sentence "
                                        f"{BOOK_TEXT!r}; use 'random' (or a CSV) for your own text")
    if cfg.embeddings == "book" and cfg.d_in != 3:
        raise ConfigError("d_in", f"the book's embeddings are 3-dimensional; got d_in {cfg.d_in} "
                                  "(use embeddings 'random' for another width)")


def prompt_tokens(cfg) -> int:
    """The prompt's tokens as the limits count them: the book's six, or the words of ``cfg.text``."""
    from core.tokens import tokenize
    return 6 if cfg.embeddings == "book" else len(tokenize(cfg.text))


class PromptOptions:
    """What the configs of the stages with their own options (core.decode_config,
    core.tiled_config) share: the chapter's prompt and layer fields (embeddings, text, d_in, d_out,
    num_heads, seed, qkv_bias, device, dtype), checked as the chapter's config checks them."""

    @property
    def head_dim(self) -> int:
        return self.d_out // self.num_heads

    def prompt_config(self) -> AttentionConfig:
        """The chapter's config for the prompt's inputs (core.inputs.resolve_inputs reads it;
        making it runs the chapter's checks: embeddings, text, sizes, seed, device, dtype)."""
        return AttentionConfig(embeddings=self.embeddings, text=self.text, d_in=self.d_in, d_out=self.d_out,
                               num_heads=self.num_heads, seed=self.seed, qkv_bias=self.qkv_bias,
                               device=self.device, dtype=self.dtype)

    def replace(self, **changes):
        """A new validated config with ``changes`` applied (raises ConfigError)."""
        return dataclasses.replace(self, **changes)


def _divisors(n: int) -> str:
    divs = [d for d in range(1, min(n, MAX_HEADS) + 1) if n % d == 0]
    shown = divs if len(divs) <= 8 else divs[:7] + ["…", divs[-1]]
    return "{" + ", ".join(str(d) for d in shown) + "}"
