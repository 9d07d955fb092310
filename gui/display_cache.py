"""The window's one display cache: what it derives from a trace's intermediates to draw them.

A trace never changes, so what a view makes of one of its intermediates (its CPU array, the
colour levels, the display images, the ARGB words the trace worker renders ahead, the
undefined-value notes) is the same on every redraw: made once, kept here under the
intermediate and a key saying what it is (e.g. ``("display", map key, stride)``), never on the
intermediate itself (core's traces hold tensors only). The intermediate is held weakly: what
is kept for it goes with its trace. Thread-safe: the trace worker fills it (gui.worker's
``_prepare_panels``) while the window reads it. Bounded: at most ``max_items`` intermediates,
the least recently used dropped first (made again if asked for).
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

_MISSING = object()


class DisplayCache:
    """``get(item, what, make)``: ``make()`` kept for ``item`` (an intermediate) under ``what``."""

    def __init__(self, max_items: int = 256):
        self.max_items = max_items
        self._lock = threading.RLock()    # re-entrant: a weakref callback may run inside it
        self._items: OrderedDict[int, tuple[weakref.ref, dict]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _kept(self, item, create: bool) -> dict | None:
        key = id(item)
        with self._lock:
            found = self._items.get(key)
            if found is not None and found[0]() is item:
                self._items.move_to_end(key)
                return found[1]
            if not create:
                return None
            ref = weakref.ref(item, lambda r, key=key: self._drop(key, r))
            self._items[key] = (ref, {})
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
            return self._items[key][1]

    def _drop(self, key: int, ref: weakref.ref) -> None:
        with self._lock:
            found = self._items.get(key)
            if found is not None and found[0] is ref:
                del self._items[key]

    def peek(self, item, what: tuple) -> Any:
        """What is kept for ``item`` under ``what``, or None."""
        kept = self._kept(item, create=False)
        return None if kept is None else kept.get(what)

    def put(self, item, what: tuple, value) -> None:
        self._kept(item, create=True)[what] = value

    def get(self, item, what: tuple, make: Callable[[], Any]):
        """``make()``, made once for ``item`` and ``what`` (made outside the lock: two threads
        asking at once may both make it; the first kept is what both get)."""
        kept = self._kept(item, create=True)
        value = kept.get(what, _MISSING)
        if value is _MISSING:
            value = kept.setdefault(what, make())
        return value

    def array(self, item) -> np.ndarray:
        """``item.numpy()`` (read-only), once: the same array object on every redraw (views
        compare drawings by their arrays; from a GPU it is a copy)."""
        return self.get(item, ("array",), item.numpy)

    def notes(self, item) -> list[dict]:
        """``core.numerics.item_notes(item)``, found once; the caller gets its own copies."""
        from core.numerics import item_notes
        return [dict(note) for note in self.get(item, ("notes",), lambda: item_notes(item))]


# The one display cache of the window: the trace worker prerenders into it, the views read it.
DISPLAY = DisplayCache()
