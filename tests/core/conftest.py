"""Fixtures shared by the core tests (helpers without fixtures: book_reference.py, references.py, snapshots.py)."""
import pytest

from core import build_trace
from core.book import BOOK_SECTIONS
from tests.core.references import VARIED_CONFIGS, VARIED_IDS


@pytest.fixture(scope="session")
def book_traces():
    """One trace per section of the chapter, under that section's settings (core.book)."""
    return {key: build_trace(cfg) for key, (_, cfg) in BOOK_SECTIONS.items()}


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(params=VARIED_CONFIGS, ids=VARIED_IDS)
def varied_trace(request):
    """A trace of each of several configs (book, rand, dropout, own text + bias + batch, float64 non-causal)."""
    return build_trace(request.param)
