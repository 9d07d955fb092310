"""Attention Stepper's core: every intermediate of chapter 3's attention, with torch only.

Nothing here imports Qt (a test enforces it). Start with ``build_trace(AttentionConfig())``.
"""
import os

# Large CPU tensors on transparent huge pages: a 50 MB intermediate costs ~20 ms of page
# faults on 4 KiB pages. Read by torch at its first allocation; harmless where unsupported.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from core.config import BOOK_TEXT, AttentionConfig, ConfigError


def __getattr__(name):
    # torch loads only when the trace is needed: `import core.config` (and core.book) stay
    # torch-free, so the GUI can validate settings while its window is already on screen.
    if name in ("Intermediate", "Trace", "build_trace"):
        from core import trace
        return getattr(trace, name)
    if name in ("STAGES", "STAGE_TITLES", "VOCABULARY"):   # read from the stage table (torch)
        from core import vocabulary
        return getattr(vocabulary, name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")


__all__ = ["AttentionConfig", "BOOK_TEXT", "ConfigError", "Intermediate", "STAGES", "STAGE_TITLES",
           "Trace", "VOCABULARY", "build_trace"]
