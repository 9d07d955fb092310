"""The token embeddings X that every stage starts from.

Three sources: the book's six 3-d vectors ("Your journey starts with one step"), seeded
random vectors for any text (one vector per distinct word, so a repeated word gets the same
row, as an embedding table would give it), or a labelled CSV file.
"""
from __future__ import annotations

import csv
import functools
import io
import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.tokens import BOOK_TOKENS, label_problem, tokenize, unique_labels  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    import torch

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

    def check_values(self) -> None:
        """Raise ConfigError("embeddings") for a value beyond MAX_ABS_EMBEDDING, inf or nan (such
        values overflow the float32 scores); the trace of every stage checks its prompt so."""
        from core.config import MAX_ABS_EMBEDDING, ConfigError
        if not self.max_abs <= MAX_ABS_EMBEDDING:  # also catches nan
            raise ConfigError("embeddings", f"every embedding value must be a finite number between "
                                            f"-{MAX_ABS_EMBEDDING:g} and {MAX_ABS_EMBEDDING:g}")

    def tensor(self, dtype: torch.dtype) -> torch.Tensor:
        import torch      # here, not at the top: reading a lesson or a CSV needs no torch
        return torch.tensor(self.array, dtype=dtype)  # (T, d_in), a new tensor

    def shared_tensor(self, dtype: torch.dtype, device: str = "cpu") -> torch.Tensor:
        """tensor(dtype) on device, made once and shared by every trace of these inputs: never modify it."""
        return self._once(("tensor", dtype, device), lambda: self.tensor(dtype).to(device))


def book_inputs() -> Inputs:
    return Inputs(BOOK_TOKENS, BOOK_EMBEDDINGS)


def random_inputs(tokens: list[str], d_in: int, seed: int) -> Inputs:
    """One seeded vector in [0, 1) per distinct word (like the book's values), stable across runs.

    The same words, width and seed give the same (read-only) Inputs object again: a parameter
    change that keeps them (causal, heads, dropout, back to an earlier seed) neither draws them
    nor converts them to a tensor again (``Inputs.shared_tensor`` is kept with them).
    """
    return _random_inputs(tuple(tokens), int(d_in), int(seed))


@functools.lru_cache(maxsize=2)       # at most 2 × 4096 × 768 float64 (25 MB each) and their float32 tensors
def _random_inputs(tokens: tuple[str, ...], d_in: int, seed: int) -> Inputs:
    import torch
    gen = torch.Generator()                     # one generator, seeded again per word
    out = torch.empty(len(tokens), d_in, dtype=torch.float64)   # (T, d_in), rows written in place
    first: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        j = first.setdefault(tok, i)
        if j != i:                              # a word seen before: its row again
            out[i] = out[j]
            continue
        key = zlib.crc32(tok.lower().encode("utf-8"))
        gen.manual_seed((seed * 1_000_003 + key) % (2**63))
        torch.rand(d_in, generator=gen, dtype=torch.float64, out=out[i])
    return Inputs(tuple(tokens), out.numpy())


MAX_CSV_BYTES = 64 * 2**20   # 4096 tokens × 768 values written with full float precision


def _csv_records(text: str, source: str) -> list[tuple[int, list[str]]]:
    """The non-blank records of a CSV text, each with the line it starts on (1-based).

    Read as a stream, not line by line, so a quoted field keeps its line breaks (a label
    with one is then refused by name) and blank lines still count in the line numbers.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    records, start = [], 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                records.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
        raise ValueError(f"{source} is not a readable CSV file (line {start}: {exc})") from None
    return records


def parse_embeddings_csv(text: str, source: str = "CSV") -> Inputs:
    """Parse a labelled CSV: optional header row, then `token, v1, …, v_d` per row.

    The header is recognised by its non-numeric value cells (an exported `inputs.csv`
    reads back as it was written). Raises ValueError with a message saying what to fix,
    naming the line of the file (blank lines included).
    """
    from core.config import shown_value

    rows = _csv_records(text, source)
    if not rows:
        raise ValueError(f"{source} is empty; expected rows of 'token, v1, v2, …'")
    first_line, first = rows[0]
    if len(first) < 2:
        raise ValueError(f"{source}: line {first_line} has no values; expected 'token, v1, v2, …'")
    if not any(_is_number(c) for c in first[1:]):  # a header has no numeric value cells
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{source} has a header but no token rows")
    width_line, width = rows[0][0], len(rows[0][1]) - 1
    tokens, values = [], []
    for i, row in rows:
        if len(row) - 1 != width:
            raise ValueError(f"{source}: line {i} has {len(row) - 1} values, line {width_line} "
                             f"has {width}; every row needs the same number")
        label = row[0].strip()
        if not label:
            raise ValueError(f"{source}: line {i} has no token label in its first column")
        problem = label_problem(label)
        if problem:
            raise ValueError(f"{source}: line {i}: the token label {shown_value(label)} {problem}")
        vec = []
        for j, cell in enumerate(row[1:], start=2):
            try:
                v = float(cell)
            except ValueError:
                raise ValueError(f"{source}: line {i}, column {j}: {shown_value(cell.strip())} is not a number") from None
            if not math.isfinite(v):
                raise ValueError(f"{source}: line {i}, column {j}: {_cell(cell)} is not a finite number")
            vec.append(v)
        tokens.append(label)
        values.append(tuple(vec))
    if width < 1:
        raise ValueError(f"{source}: rows have no values after the token label")
    return Inputs(tuple(tokens), tuple(values))


def load_embeddings_csv(path: str | Path) -> Inputs:
    """Read and parse an embeddings CSV (a regular UTF-8 file of at most MAX_CSV_BYTES, BOM or not)."""
    from core.files import read_text_file, shown_path
    text = read_text_file(path, MAX_CSV_BYTES, "CSV file")
    return parse_embeddings_csv(text, source=shown_path(path))


def _cell(cell: str) -> str:
    text = cell.strip()
    return text if len(text) <= 40 else text[:39] + "…"


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
