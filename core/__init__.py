"""Attention Stepper's core: every intermediate of chapter 3's attention, with torch only.

Nothing here imports Qt (a test enforces it). Start with ``build_trace(AttentionConfig())``.
"""
from core.config import BOOK_TEXT, AttentionConfig, ConfigError
from core.trace import Intermediate, Trace, build_trace
from core.vocabulary import STAGES, STAGE_TITLES, VOCABULARY

__all__ = ["AttentionConfig", "BOOK_TEXT", "ConfigError", "Intermediate", "STAGES", "STAGE_TITLES",
           "Trace", "VOCABULARY", "build_trace"]
