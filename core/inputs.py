"""The token embeddings X that every stage starts from.

Three sources: the book's six 3-d vectors ("Your journey starts with one step"), seeded
random vectors for any text (one vector per distinct word, so a repeated word gets the same
row, as an embedding table would give it), or a labelled CSV file.
"""
from __future__ import annotations

import csv
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from core.tokens import BOOK_TOKENS, tokenize, unique_labels  # noqa: F401 (re-exported)

BOOK_EMBEDDINGS = (
    (0.43, 0.15, 0.89),  # Your     (x^1)
    (0.55, 0.87, 0.66),  # journey  (x^2)
    (0.57, 0.85, 0.64),  # starts   (x^3)
    (0.22, 0.58, 0.33),  # with     (x^4)
    (0.77, 0.25, 0.10),  # one      (x^5)
    (0.05, 0.80, 0.55),  # step     (x^6)
)

class Inputs:
    """Tokens and their embeddings: a read-only (T, d_in) float64 array on the CPU."""

    __slots__ = ("tokens", "array", "_derived")

    def __init__(self, tokens, values):
        arr = np.array(values, dtype=np.float64)  # (T, d_in), a private copy
        if arr.ndim != 2 or arr.shape[0] != len(tokens):
            raise ValueError(f"expected one row of values per token, got shape {arr.shape} for {len(tokens)} tokens")
        arr.setflags(write=False)
        object.__setattr__(self, "tokens", tuple(tokens))
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "_derived", {})   # labels, max |value|, tensors: computed once

    def __setattr__(self, name, value):
        raise AttributeError("Inputs is read-only; make a new one")

    def __eq__(self, other) -> bool:
        return (isinstance(other, Inputs) and self.tokens == other.tokens
                and self.array.shape == other.array.shape and bool(np.array_equal(self.array, other.array)))

    __hash__ = None

    def __repr__(self) -> str:
        return f"Inputs(tokens={self.tokens!r}, shape={self.array.shape})"

    @property
    def values(self) -> tuple[tuple[float, ...], ...]:
        return tuple(tuple(row) for row in self.array.tolist())

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    def _once(self, key, make):
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    @property
    def labels(self) -> tuple[str, ...]:
        return self._once("labels", lambda: unique_labels(self.tokens))

    @property
    def max_abs(self) -> float:
        """The largest |value| (nan if any value is nan); 0 for an empty table."""
        def largest() -> float:
            if not self.array.size:
                return 0.0
            return float("nan") if np.isnan(self.array).any() else float(np.abs(self.array).max())
        return self._once("max_abs", largest)

    def tensor(self, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(self.array, dtype=dtype)  # (T, d_in), a new tensor

    def shared_tensor(self, dtype: torch.dtype, device: str = "cpu") -> torch.Tensor:
        """tensor(dtype) on device, made once and shared by every trace of these inputs: never modify it."""
        return self._once(("tensor", dtype, device), lambda: self.tensor(dtype).to(device))


def book_inputs() -> Inputs:
    return Inputs(BOOK_TOKENS, BOOK_EMBEDDINGS)


def random_inputs(tokens: list[str], d_in: int, seed: int) -> Inputs:
    """One seeded vector in [0, 1) per distinct word (like the book's values), stable across runs."""
    cache: dict[str, torch.Tensor] = {}
    rows = []
    for tok in tokens:
        if tok not in cache:
            key = zlib.crc32(tok.lower().encode("utf-8"))
            gen = torch.Generator().manual_seed((seed * 1_000_003 + key) % (2**63))
            cache[tok] = torch.rand(d_in, generator=gen, dtype=torch.float64)
        rows.append(cache[tok])
    return Inputs(tuple(tokens), torch.stack(rows).numpy())  # (T, d_in)


def parse_embeddings_csv(text: str, source: str = "CSV") -> Inputs:
    """Parse a labelled CSV: optional header row, then `token, v1, …, v_d` per row.

    The header is recognised by its non-numeric value cells (an exported `inputs.csv`
    reads back as it was written). Raises ValueError with a message saying what to fix.
    """
    try:
        rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
        raise ValueError(f"{source} is not a readable CSV file: {exc}") from None
    if not rows:
        raise ValueError(f"{source} is empty; expected rows of 'token, v1, v2, …'")
    if len(rows[0]) < 2:
        raise ValueError(f"{source}: line 1 has no values; expected 'token, v1, v2, …'")
    header_line = 0
    if not any(_is_number(c) for c in rows[0][1:]):  # a header has no numeric value cells
        header_line = 1
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{source} has a header but no token rows")
    width = len(rows[0]) - 1
    tokens, values = [], []
    for i, row in enumerate(rows, start=1 + header_line):
        if len(row) - 1 != width:
            raise ValueError(f"{source}: line {i} has {len(row) - 1} values, line {1 + header_line} "
                             f"has {width}; every row needs the same number")
        label = row[0].strip()
        if not label:
            raise ValueError(f"{source}: line {i} has no token label in its first column")
        vec = []
        for j, cell in enumerate(row[1:], start=2):
            try:
                v = float(cell)
            except ValueError:
                raise ValueError(f"{source}: line {i}, column {j}: {cell.strip()!r} is not a number") from None
            if not math.isfinite(v):
                raise ValueError(f"{source}: line {i}, column {j}: {cell.strip()} is not a finite number")
            vec.append(v)
        tokens.append(label)
        values.append(tuple(vec))
    if width < 1:
        raise ValueError(f"{source}: rows have no values after the token label")
    return Inputs(tuple(tokens), tuple(values))


def load_embeddings_csv(path: str | Path) -> Inputs:
    p = Path(path)
    try:
        if not p.exists():
            raise ValueError(f"{p} does not exist")
        if not p.is_file():
            raise ValueError(f"{p} is not a file")
    except OSError as exc:  # e.g. a name too long for the file system
        raise ValueError(f"{_short(str(p))} cannot be opened: {exc.strerror or exc}") from None
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p} cannot be read: {exc}") from None
    return parse_embeddings_csv(text, source=str(p))


def _short(text: str, limit: int = 80) -> str:
    """A path shortened for a one-line message."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def resolve_inputs(cfg) -> Inputs:
    """The Inputs a config asks for; CSV problems raise ConfigError('embeddings', …)."""
    from core.config import ConfigError

    if cfg.embeddings == "book":
        return book_inputs()
    tokens = tokenize(cfg.text)
    if cfg.embeddings == "random":
        return random_inputs(tokens, cfg.d_in, cfg.seed)
    try:
        inp = load_embeddings_csv(cfg.embeddings)
    except ValueError as exc:
        raise ConfigError("embeddings", str(exc)) from None
    width = inp.width
    if width != cfg.d_in:
        raise ConfigError("d_in", f"the embeddings CSV has {width} values per token but d_in is "
                                  f"{cfg.d_in}; set d_in to {width}")
    from core.config import MAX_TOKENS
    if len(inp.tokens) > MAX_TOKENS:
        raise ConfigError("embeddings", f"the CSV has {len(inp.tokens)} tokens; the limit is {MAX_TOKENS}")
    return inp
