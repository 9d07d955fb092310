"""The frozen, validated options of the decode stage (torch-free: the GUI checks them first).

The prompt's options are the chapter's (embeddings, text, d_in, d_out, num_heads, seed,
qkv_bias, device, dtype: checked by core.config.AttentionConfig, so a bad one is refused with
the same words); the variant's own are the book's argument names: num_kv_groups (GQA's K/V
heads), latent_dim (MLA), sliding_window_size (SWA). ``None`` means the variant's default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.config import BOOK_TEXT, MAX_TOKENS, ConfigError, PromptOptions, check_int, prompt_tokens, shown_value

VARIANTS = ("mha", "gqa", "mqa", "mla", "swa")   # the same as core.stages.decode.VARIANTS
MAX_NEW_TOKENS = 256        # steps kept in one trace (each keeps its cache: memory grows as steps × tokens)
MAX_DECODE_TOKENS = 1024    # prompt + new tokens
DEFAULT_WINDOW = 4


@dataclass(frozen=True)
class DecodeConfig(PromptOptions):
    """What determines one decode trace. Field names match the CLI options."""

    variant: str = "mha"                  # mha | gqa | mqa | mla | swa
    embeddings: str = "book"              # "book", "random" (seeded, one vector per word) or a CSV path
    text: str = BOOK_TEXT                 # the prompt
    d_in: int = 3                         # embedding width
    d_out: int = 8                        # all heads together
    num_heads: int = 4                    # query heads; d_out % num_heads == 0
    num_kv_groups: int | None = None      # K/V heads (gqa, swa); None: gqa num_heads // 2, swa num_heads
    latent_dim: int | None = None         # MLA's cached latent width, 1..d_out; None: d_out // 2
    sliding_window_size: int | None = None   # SWA's window W ≥ 1; None: 4
    new_tokens: int = 3                   # tokens appended one at a time after the prompt
    next_text: str = ""                   # the words to append (else new tokens gen1, gen2, … with seeded vectors)
    seed: int = 123                       # torch.manual_seed before the weights; also seeds the new embeddings
    qkv_bias: bool = False                # biases in the query/key/value (MLA: W_DKV, W_UK, W_UV) projections
    device: str = "auto"                  # "auto" (cuda when available), "cpu" or "cuda"
    dtype: str = "float32"                # "float32" or "float64"

    def __post_init__(self) -> None:
        validate(self)

    # the values the run uses (the variant's defaults filled in)
    @property
    def kv_groups(self) -> int:
        """How many K/V heads: num_heads (mha), 1 (mqa), num_kv_groups (gqa, swa); MLA: num_heads."""
        if self.variant == "mqa":
            return 1
        if self.num_kv_groups is not None:
            return self.num_kv_groups
        if self.variant == "gqa":
            return self.num_heads // 2 if self.num_heads % 2 == 0 else 1
        return self.num_heads

    @property
    def latent(self) -> int | None:
        if self.variant != "mla":
            return None
        return self.latent_dim if self.latent_dim is not None else max(1, self.d_out // 2)

    @property
    def window(self) -> int | None:
        if self.variant != "swa":
            return None
        return self.sliding_window_size if self.sliding_window_size is not None else DEFAULT_WINDOW

    @property
    def batch(self) -> int:
        return 1

    def to_dict(self) -> dict:
        """The fields with the variant's defaults filled in (what ran: the manifest's config)."""
        out = dataclasses.asdict(self)
        out.update(num_kv_groups=self.kv_groups if self.variant != "mla" else None, latent_dim=self.latent,
                   sliding_window_size=self.window, head_dim=self.head_dim)
        return out


def _divisors(n: int) -> str:
    return "{" + ", ".join(str(d) for d in range(1, n + 1) if n % d == 0) + "}"


def validate(cfg: DecodeConfig) -> None:
    """Raise ConfigError for the first invalid field."""
    from core.tokens import tokenize

    if not isinstance(cfg.variant, str) or cfg.variant not in VARIANTS:
        raise ConfigError("variant", f"must be one of {', '.join(VARIANTS)}; got {shown_value(cfg.variant)}")
    cfg.prompt_config()                   # the chapter's checks: embeddings, text, sizes, seed, device, dtype
    v = cfg.variant
    if cfg.num_kv_groups is not None:
        if v not in ("gqa", "swa", "mha", "mqa"):
            raise ConfigError("num_kv_groups", "applies to gqa and swa (mla caches a latent, not K/V heads)")
        check_int(cfg, "num_kv_groups", 1, cfg.num_heads, f" (num_heads is {cfg.num_heads})")
        if cfg.num_heads % cfg.num_kv_groups:
            raise ConfigError("num_kv_groups", f"num_heads ({cfg.num_heads}) must be divisible by num_kv_groups "
                                               f"({cfg.num_kv_groups}); try num_kv_groups in {_divisors(cfg.num_heads)}")
        if v == "mha" and cfg.num_kv_groups != cfg.num_heads:
            raise ConfigError("num_kv_groups", f"mha has one K/V head per query head ({cfg.num_heads}); "
                                               "use --variant gqa for fewer")
        if v == "mqa" and cfg.num_kv_groups != 1:
            raise ConfigError("num_kv_groups", "mqa has one K/V head; use --variant gqa for more")
    if cfg.latent_dim is not None:
        if v != "mla":
            raise ConfigError("latent_dim", "applies to mla only")
        check_int(cfg, "latent_dim", 1, cfg.d_out, f" (at most d_out = {cfg.d_out}: the latent compresses K and V)")
    if cfg.sliding_window_size is not None:
        if v != "swa":
            raise ConfigError("sliding_window_size", "applies to swa only")
        check_int(cfg, "sliding_window_size", 1, MAX_DECODE_TOKENS)
    check_int(cfg, "new_tokens", 1, MAX_NEW_TOKENS)
    if not isinstance(cfg.next_text, str):
        raise ConfigError("next_text", f"must be a string, got {type(cfg.next_text).__name__}")
    if cfg.next_text.strip():
        words = tokenize(cfg.next_text)
        if len(words) != cfg.new_tokens:
            raise ConfigError("new_tokens", f"is {cfg.new_tokens} but {shown_value(cfg.next_text)} has {len(words)} "
                                            f"word{'s' if len(words) != 1 else ''} to append; give one new token per word")
    prompt = prompt_tokens(cfg)
    limit = min(MAX_DECODE_TOKENS, MAX_TOKENS)
    if prompt + cfg.new_tokens > limit:
        raise ConfigError("new_tokens", f"the prompt's {prompt} tokens and {cfg.new_tokens} new ones make "
                                        f"{prompt + cfg.new_tokens}; the decode stage keeps at most {limit}")
