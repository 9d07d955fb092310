"""The settings under which each section of chapter 3 prints its numbers.

The chapter draws its weights under different seeds in different sections, so no single
config reproduces every printed table. ``BOOK_SECTIONS`` maps each section to the config
that does; the GUI's "Book" preset shows every step from its section's trace.
"""
from __future__ import annotations

from core.config import AttentionConfig

BOOK_SECTIONS: dict[str, tuple[str, AttentionConfig]] = {
    # section key: (where in the chapter, config)
    "simplified": ("3.3 simplified self-attention (no weights)", AttentionConfig()),
    "v1": ("3.4 SelfAttention_v1: torch.rand weights, seed 123", AttentionConfig(init="rand", seed=123)),
    "v2": ("3.4.2 SelfAttention_v2: nn.Linear weights, seed 789", AttentionConfig(init="linear", seed=789)),
    "causal": ("3.5.1-3.5.2 masking and dropout: sa_v2's weights (seed 789), dropout 0.5 (seed 123)",
               AttentionConfig(init="linear", seed=789, dropout=0.5, dropout_seed=123)),
    "causal_batch": ("3.5.3 CausalAttention on a batch of two, seed 123",
                     AttentionConfig(init="linear", seed=123, batch=2)),
    "wrapper": ("3.6.1 MultiHeadAttentionWrapper: 2 heads of width 2, seed 123",
                AttentionConfig(init="linear", seed=123, d_out=4, num_heads=2, batch=2)),
    "fused": ("3.6.2 MultiHeadAttention: d_out 2, 2 heads, seed 123",
              AttentionConfig(init="linear", seed=123, d_out=2, num_heads=2, batch=2)),
}


def book_config(section: str) -> AttentionConfig:
    return BOOK_SECTIONS[section][1]
