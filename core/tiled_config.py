"""The frozen, validated options of the tiled-attention (FlashAttention) and RoPE stages
(torch-free: the GUI checks them first).

Both run on one head of the chapter's MultiHeadAttention: the prompt's options are the
chapter's (embeddings, text, d_in, d_out, num_heads, seed, qkv_bias, device, dtype: checked by
core.config.AttentionConfig, so a bad one is refused with the same words) plus ``head``, the
head whose Q, K, V are used. The tiled stage adds the block sizes Br, Bc, causal and the
FlashAttention-2 form; the RoPE stage the base, the form (split halves or interleaved) and the
shift of the relative-position check.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from core.config import BOOK_TEXT, ConfigError, PromptOptions, check_bool, check_int, prompt_tokens, shown_value

MAX_BLOCK = 64            # Br, Bc: 1..64 (need not divide T)
MAX_TILES = 1024          # query blocks × key blocks in one trace (each visited tile is one folder)
MAX_TILED_TOKENS = 1024
MAX_ROPE_TOKENS = 1024    # the pairs are exported one CSV per position
MAX_SHIFT = 1_000_000
MAX_BASE = 1e12
FORMS = ("split", "interleaved")


class _HeadOptions(PromptOptions):
    """The prompt and the head: what both stages share."""

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "head_dim": self.head_dim}

    def _validate_head(self, limit: int) -> None:
        self.prompt_config()                           # the chapter's checks: embeddings, text, sizes, seed…
        check_int(self, "head", 0, self.num_heads - 1, f" (num_heads is {self.num_heads}; heads count from 0)")
        n = prompt_tokens(self)
        if n > limit:
            raise ConfigError("text", f"has {n} tokens; this stage keeps at most {limit}")


@dataclass(frozen=True)
class TiledConfig(_HeadOptions):
    """What determines one tiled-attention trace. Field names match the CLI options."""

    embeddings: str = "book"
    text: str = BOOK_TEXT
    d_in: int = 3
    d_out: int = 16
    num_heads: int = 2
    head: int = 0                 # the head whose Q, K, V are tiled
    block_rows: int = 2           # Br: queries per tile
    block_cols: int = 2           # Bc: keys per tile
    causal: bool = True           # tiles wholly above the diagonal are skipped
    fa2: bool = False             # FlashAttention-2: unscaled accumulator, query blocks outermost
    seed: int = 123
    qkv_bias: bool = False
    device: str = "auto"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self._validate_head(MAX_TILED_TOKENS)
        check_int(self, "block_rows", 1, MAX_BLOCK)
        check_int(self, "block_cols", 1, MAX_BLOCK)
        check_bool(self, "causal")
        check_bool(self, "fa2")
        T = prompt_tokens(self)
        tiles = math.ceil(T / self.block_rows) * math.ceil(T / self.block_cols)
        if tiles > MAX_TILES:
            raise ConfigError("block_rows", f"{T} tokens in blocks of {self.block_rows} × {self.block_cols} make "
                                            f"{tiles} tiles; the limit is {MAX_TILES}: use larger blocks")

    @property
    def tokens(self) -> int:
        return prompt_tokens(self)


@dataclass(frozen=True)
class RopeConfig(_HeadOptions):
    """What determines one RoPE trace. Field names match the CLI options."""

    embeddings: str = "book"
    text: str = BOOK_TEXT
    d_in: int = 3
    d_out: int = 16
    num_heads: int = 2
    head: int = 0                 # the head whose q and k are rotated
    base: float = 10_000.0        # θ_i = base^(−2i/d); Llama 3 / Qwen3 use 500,000 / 1,000,000
    form: str = "split"           # "split" (the book's rotate_half) or "interleaved" (pairs 2i, 2i+1)
    shift: int = 3                # the relative-position check: both positions moved by this much
    seed: int = 123
    qkv_bias: bool = False
    device: str = "auto"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self._validate_head(MAX_ROPE_TOKENS)
        if self.head_dim % 2:
            raise ConfigError("d_out", f"RoPE rotates pairs of dimensions: head_dim = d_out / num_heads = "
                                       f"{self.d_out} / {self.num_heads} = {self.head_dim} must be even")
        b = self.base
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or not 1 < b <= MAX_BASE:
            raise ConfigError("base", f"must be a number above 1 and at most {MAX_BASE:.0e}, got {shown_value(b)}")
        if not isinstance(self.form, str) or self.form not in FORMS:
            raise ConfigError("form", f"must be one of {', '.join(FORMS)}; got {shown_value(self.form)}")
        check_int(self, "shift", 0, MAX_SHIFT)
