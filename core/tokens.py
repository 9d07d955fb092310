"""Tokens: the book's sentence and the word/punctuation tokenizer (no torch, imported at start-up)."""
from __future__ import annotations

import re

BOOK_TOKENS = ("Your", "journey", "starts", "with", "one", "step")
_TOKEN_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Split text into words and punctuation marks: "Hi, you!" -> ["Hi", ",", "you", "!"]."""
    return _TOKEN_RE.findall(text)


def unique_labels(tokens: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Row/column labels: the tokens, with '#2', '#3'… on repeats so every label is unique."""
    seen: dict[str, int] = {}
    labels = []
    for tok in tokens:
        seen[tok] = seen.get(tok, 0) + 1
        labels.append(tok if seen[tok] == 1 else f"{tok}#{seen[tok]}")
    return tuple(labels)


