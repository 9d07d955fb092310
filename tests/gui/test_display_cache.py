"""gui.display_cache: what the window makes of an intermediate, made once, kept beside the
trace (never on it), dropped with it, bounded, and safe to fill from the trace worker."""
from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

from core.config import AttentionConfig
from core.trace import build_trace
from gui.display_cache import DISPLAY, DisplayCache


class _Item:
    """A stand-in intermediate (the cache holds any object weakly)."""


@pytest.fixture(scope="module")
def trace():
    return build_trace(AttentionConfig(device="cpu", embeddings="random", text="a b c d", d_in=4, d_out=4,
                                       num_heads=2, seed=1))


def test_what_is_made_is_made_once_per_item_and_key():
    cache, a, b = DisplayCache(), _Item(), _Item()
    made = []
    first = cache.get(a, ("x",), lambda: made.append("a") or ["a"])
    assert cache.get(a, ("x",), lambda: made.append("again") or ["again"]) is first
    assert cache.get(b, ("x",), lambda: made.append("b") or ["b"]) == ["b"]
    assert cache.get(a, ("y",), lambda: made.append("y") or 0) == 0
    assert made == ["a", "b", "y"]
    assert cache.peek(a, ("x",)) is first and cache.peek(a, ("z",)) is None and cache.peek(_Item(), ("x",)) is None
    cache.put(b, ("z",), 5)
    assert cache.peek(b, ("z",)) == 5


def test_an_entry_goes_with_its_intermediate():
    cache, a, b = DisplayCache(), _Item(), _Item()
    cache.put(a, ("x",), np.zeros(3))
    cache.put(b, ("x",), 1)
    assert len(cache) == 2
    del a
    gc.collect()
    assert len(cache) == 1 and cache.peek(b, ("x",)) == 1


def test_it_keeps_at_most_max_items_the_least_recently_used_dropped_first():
    cache = DisplayCache(max_items=3)
    items = [_Item() for _ in range(4)]
    for i, item in enumerate(items[:3]):
        cache.put(item, ("v",), i)
    assert cache.peek(items[0], ("v",)) == 0              # used: now the most recent
    cache.put(items[3], ("v",), 3)
    assert len(cache) == 3
    assert [cache.peek(it, ("v",)) for it in items] == [0, None, 2, 3]


def test_threads_filling_it_at_once_all_get_the_one_value_kept():
    cache, item = DisplayCache(), _Item()
    got, start = [], threading.Barrier(8)

    def ask(k):
        start.wait()
        for j in range(200):
            got.append((j, cache.get(item, ("v", j), lambda j=j, k=k: (j, k))))
    threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for j, value in got:
        assert value is cache.peek(item, ("v", j))          # every thread got what is kept
    assert len(got) == 8 * 200


def test_the_array_is_the_intermediates_numbers_and_the_same_object_every_redraw(trace):
    item = trace["causal", "attn_weights"]
    arr = DISPLAY.array(item)
    assert DISPLAY.array(item) is arr and not arr.flags.writeable
    np.testing.assert_array_equal(arr, item.tensor.numpy())


def test_notes_are_found_once_per_intermediate_and_callers_get_their_own(trace, monkeypatch):
    """The window asks for a step's notes on every redraw; the scan runs once per intermediate."""
    from core import numerics
    item = trace["simplified", "attn_weights_sumnorm"]
    item = type(item)(item.stage, item.name, item.source.clone(), item.term, item.axes, item.labels)
    item.source[0, :] = float("nan")                          # a fresh intermediate holding a nan row
    scans = []
    real = numerics.item_notes
    monkeypatch.setattr(numerics, "item_notes", lambda it: scans.append(it.name) or real(it))
    first = DISPLAY.notes(item)
    assert [(n["index"], n["value"], n["count"]) for n in first] == [([], "nan", 4)]
    first[0]["count"] = 0
    first.append({"mine": True})
    assert DISPLAY.notes(item)[0]["count"] == 4 and len(DISPLAY.notes(item)) == 1
    assert scans == ["attn_weights_sumnorm"]
