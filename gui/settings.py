"""The settings behind the chapter's traces, as one frozen value (Qt-free, torch-free).

A :class:`Settings` is the preset ("book" or "custom"), the attempted custom config (``params``,
which may be invalid) and the edits that go with it: edited embeddings (``inputs``), edited
W_query/W_key/W_value (``weights``) and stage 4's own weights (``multihead``, a trained layer's,
with ``multihead_source``). The view model holds two: ``requested`` (what the learner asked for
last, refused or not) and ``applied`` (what the traces on screen were computed from); the
controller turns one into a request and a result back into ``applied``.

Every change is a method that returns a new value; the drop rules (which edits a config change
invalidates) live here and nowhere else. Mappings are read-only views; the arrays inside are
shared, not copied (the tables and loaders hand over arrays nobody writes to afterwards).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

BOOK, CUSTOM = "book", "custom"
INPUT_FIELDS = ("embeddings", "text", "d_in")                   # a change drops edited embeddings
WEIGHT_FIELDS = ("d_in", "d_out", "init", "seed")                # a change drops edited weights
MULTIHEAD_FIELDS = ("d_in", "d_out", "num_heads", "qkv_bias")    # a change drops stage 4's own weights
EDIT_FIELDS = ("embeddings", "W_query", "W_key", "W_value")      # errors an edit can cause

_EMPTY: Mapping = MappingProxyType({})


def _frozen(mapping) -> Mapping:
    return MappingProxyType(dict(mapping)) if mapping else _EMPTY


def edit_refused(field: str) -> bool:
    """Whether an error on ``field`` refuses the edits (embeddings, weights, stage 4's layer, or
    the whole request) rather than one config field: the edits then go back to the applied ones."""
    return not field or field in EDIT_FIELDS or field.startswith("multihead.")


@dataclass(frozen=True, eq=False)
class Settings:
    """Preset, config and edits; equal when the preset, the config and every edited value are."""

    mode: str = BOOK
    params: Mapping | None = None       # custom: the attempted AttentionConfig fields (may be invalid)
    inputs: object = None               # custom: edited embeddings (core.inputs.Inputs) or None
    weights: Mapping = None             # custom: edited W_query/W_key/W_value (name -> d_in × d_out array)
    multihead: Mapping = None           # custom: stage 4's W_query, W_key, W_value, W_out, b_out
    multihead_source: object = None     # where they come from (core.train.stepper.StepperSource)

    BOOK: ClassVar[Settings]            # the Book preset: every step from its chapter section's config
    # (weights and multihead: None or a mapping in, always a read-only mapping after __init__)

    def __post_init__(self) -> None:
        if self.mode not in (BOOK, CUSTOM):
            raise ValueError(f"unknown mode {self.mode!r}")
        put = object.__setattr__
        put(self, "params", None if self.params is None else MappingProxyType(dict(self.params)))
        put(self, "weights", _frozen(self.weights))
        put(self, "multihead", _frozen(self.multihead))
        if not self.multihead:
            put(self, "multihead_source", None)      # a source only with its weights
        if self.mode == BOOK and (self.params is not None or self.inputs is not None
                                  or self.weights or self.multihead):
            raise ValueError("the Book preset has no custom config or edits")

    # ---- read --------------------------------------------------------------------------------
    @property
    def edits(self) -> tuple:
        """(inputs, weights): the edits the tables make."""
        return self.inputs, self.weights

    def __eq__(self, other) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return (self.mode == other.mode and self.params == other.params
                and _same(self.inputs, other.inputs) and _same_map(self.weights, other.weights)
                and _same_map(self.multihead, other.multihead)
                and self.multihead_source is other.multihead_source)

    __hash__ = None          # holds arrays: not a dict key

    def __repr__(self) -> str:
        edits = [name for name, on in (("inputs", self.inputs is not None), ("weights", bool(self.weights)),
                                       ("multihead", bool(self.multihead))) if on]
        return f"Settings({self.mode!r}, {dict(self.params) if self.params is not None else None}, edits={edits})"

    # ---- change (each returns a new Settings) ---------------------------------------------------
    def changed(self, base: Mapping, **changes) -> Settings:
        """Config fields changed from ``base`` (the config shown): a custom Settings. Edits the
        change invalidates are dropped (a new embeddings source, new weight shapes or seed, a
        layer that no longer fits); leaving the Book preset drops them all."""
        params = {**base, **changes}

        def kept(fields) -> bool:
            return self.mode == CUSTOM and all(params.get(f) == base.get(f) for f in fields)
        multihead = kept(MULTIHEAD_FIELDS)
        return Settings(CUSTOM, params, self.inputs if kept(INPUT_FIELDS) else None,
                        self.weights if kept(WEIGHT_FIELDS) else None,
                        self.multihead if multihead else None, self.multihead_source if multihead else None)

    def with_edits(self, base: Mapping, inputs=None, weights: Mapping | None = None) -> Settings:
        """Edited embeddings and/or weights on the config ``base``: a custom Settings; ``inputs``
        None keeps the current ones, ``weights`` are merged into the current ones."""
        return Settings(CUSTOM, base, inputs if inputs is not None else self.inputs,
                        {**self.weights, **(weights or {})}, self.multihead, self.multihead_source)

    def without_edits(self) -> Settings:
        """The same preset and config, no edits (the config's own embeddings and weights)."""
        return Settings(self.mode, self.params)

    def with_edits_from(self, other: Settings) -> Settings:
        """This config with ``other``'s edits (a refused edit: back to the applied ones)."""
        if self.mode == BOOK:
            return self
        return Settings(CUSTOM, self.params, other.inputs, other.weights, other.multihead,
                        other.multihead_source)


Settings.BOOK = Settings()


def _same(a, b) -> bool:
    """Equal values: the same object, or equal tokens and numbers (arrays, Inputs); nan equals nan."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    import numpy as np
    if hasattr(a, "tokens") and hasattr(b, "tokens"):                 # core.inputs.Inputs
        return tuple(a.tokens) == tuple(b.tokens) and _same(a.array, b.array)
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape:
        return False
    try:
        return bool(np.array_equal(x, y, equal_nan=True))
    except TypeError:                                                 # not numbers
        return bool(np.array_equal(x, y))


def _same_map(a: Mapping, b: Mapping) -> bool:
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
