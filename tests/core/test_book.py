"""core.book: the settings under which each section prints its numbers.

Every table chapter 3 prints is checked in its stage's tests (tests/core/stages/test_<stage>.py):
expected values are derived by running the book's own procedure (tests/core/book_reference.py:
seed, draw, compute) and compared to 4 decimals; a handful are also pinned as literals.
"""
from core import AttentionConfig, build_trace
from core.book import BOOK_SECTIONS, book_config
from tests.core.book_reference import same_4dp


def test_default_config_is_the_fused_book_example():
    """The app opens on the book's sentence with d_out 2, 2 heads, linear/123."""
    cfg = AttentionConfig()
    assert (cfg.d_out, cfg.num_heads, cfg.init, cfg.seed) == (2, 2, "linear", 123)
    same_4dp(build_trace(cfg)["multihead", "context_vecs"].tensor[0], [0.3190, 0.4858])


def test_book_sections_are_valid_configs():
    assert book_config("fused").num_heads == 2
    assert set(BOOK_SECTIONS) == {"simplified", "v1", "v2", "causal", "causal_batch", "wrapper", "fused"}
