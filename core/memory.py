"""Estimate a trace's memory before computing it, and refuse configs that would not fit.

The estimate counts every intermediate of the stage table (they all stay alive for the
learner; sizes read off each term's axes) plus the temporaries of the largest step, in the
trace's dtype.
"""
from __future__ import annotations

import os

from core.config import AttentionConfig

# Share of the available memory one trace may take (the rest is for the app, the display
# copies and the OS).
BUDGET_SHARE = 0.5


class MemoryBudgetError(Exception):
    """The trace would not fit; the message says what to reduce."""


def num_tokens(cfg: AttentionConfig) -> int:
    from core.inputs import load_embeddings_csv, tokenize
    if cfg.embeddings == "book":
        return 6
    if cfg.embeddings == "random":
        return len(tokenize(cfg.text))
    try:
        return len(load_embeddings_csv(cfg.embeddings).tokens)
    except ValueError:
        return len(tokenize(cfg.text))


def term_elements(cfg: AttentionConfig, tokens: int) -> dict[tuple[str, str], int]:
    """Elements of every intermediate of the stage table (core.stages.STAGES), read off its axes."""
    from core.stages import CHAPTER

    size = {"token": tokens, "query": tokens, "key": tokens, "in": cfg.d_in, "out": cfg.d_out,
            "hd": cfg.d_out // cfg.num_heads, "head": cfg.num_heads}
    out = {}
    for stage in CHAPTER.values():
        for name, term in stage.terms.items():
            if term.optional and not cfg.qkv_bias:
                continue
            n = cfg.batch if term.batched else 1
            for axis in term.axes:
                n *= size[axis]
            out[stage.name, name] = n
    return out


def estimate_bytes(cfg: AttentionConfig, tokens: int | None = None) -> int:
    """Bytes the full trace keeps alive, plus the peak temporaries."""
    T = num_tokens(cfg) if tokens is None else tokens
    b, h, d_out = cfg.batch, cfg.num_heads, cfg.d_out
    item = 8 if cfg.dtype == "float64" else 4
    elems = sum(term_elements(cfg, T).values())
    temporaries = 3 * b * max(h, 1) * T * T + 3 * b * T * d_out  # scaling / softmax / projection temporaries
    return int((elems + temporaries) * item)


def available_bytes(device: str = "cpu") -> int:
    if device.startswith("cuda"):
        import torch
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def check_memory(cfg: AttentionConfig, tokens: int | None = None, available: int | None = None) -> int:
    """Return the estimate, or raise MemoryBudgetError naming what to reduce."""
    need = estimate_bytes(cfg, tokens)
    if available is None:
        from core.device import resolve_device
        device, _ = resolve_device(cfg.device)
        available = available_bytes(device)
    budget = int(available * BUDGET_SHARE)
    if need > budget:
        T = num_tokens(cfg) if tokens is None else tokens
        raise MemoryBudgetError(
            f"this trace needs about {_fmt(need)} but the budget is {_fmt(budget)} "
            f"({int(BUDGET_SHARE * 100)}% of {_fmt(available)} free); reduce the tokens ({T}), "
            f"the batch ({cfg.batch}), the heads ({cfg.num_heads}) or d_in/d_out ({cfg.d_in}/{cfg.d_out})"
        )
    return need


def _fmt(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
