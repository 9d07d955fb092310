"""Tokens: the book's sentence, the word/punctuation tokenizer, row/column labels and the
checks every piece of user text passes (no torch, imported at start-up)."""
from __future__ import annotations

import re

BOOK_TOKENS = ("Your", "journey", "starts", "with", "one", "step")
_TOKEN_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_LINE_BREAK_RE = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")   # what str.splitlines splits on
MAX_LABEL_CHARS = 200      # a token label is a tick label and a CSV cell, not a paragraph


def tokenize(text: str) -> list[str]:
    """Split text into words and punctuation marks: "Hi, you!" -> ["Hi", ",", "you", "!"]."""
    return _TOKEN_RE.findall(text)


def unique_labels(tokens: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Row/column labels: the tokens, with '#2', '#3'… on repeats so every label is unique.

    A suffix never takes a label that is already some token's own (``a, a, a#2`` gives
    ``a, a#3, a#2``): the first occurrence of every token keeps its name.
    """
    taken = set(tokens)
    seen: set[str] = set()
    labels = []
    for tok in tokens:
        if tok not in seen:
            seen.add(tok)
            labels.append(tok)
            continue
        n = 2
        while f"{tok}#{n}" in taken:
            n += 1
        label = f"{tok}#{n}"
        taken.add(label)
        labels.append(label)
    return tuple(labels)


def not_text(text: str) -> str | None:
    """Why ``text`` is not text a file or terminal can hold (a lone surrogate), else None.

    Python keeps bytes that are not UTF-8 (a Latin-1 terminal's 'é' in sys.argv) as the
    surrogates U+DC80..U+DCFF, and JSON's "\\ud800" escapes decode to lone surrogates: both
    fail later, when the text is encoded, so they are refused here with where they are.
    """
    m = _SURROGATE_RE.search(text)
    if m is None:
        return None
    code = ord(m.group())
    where = f"character {m.start() + 1}"
    if 0xDC80 <= code <= 0xDCFF:
        return (f"contains the byte 0x{code - 0xDC00:02X} ({where}), which is not UTF-8: "
                "the terminal or file uses another encoding; switch it to UTF-8 and type it again")
    return f"contains a lone surrogate U+{code:04X} ({where}), which is not a character"


def label_problem(label) -> str | None:
    """Why ``label`` cannot be a token label (one line of text, at most MAX_LABEL_CHARS), else None."""
    if not isinstance(label, str):
        return f"must be text, got {type(label).__name__}"
    if not label.strip():
        return "is empty; every token needs a name"
    if len(label) > MAX_LABEL_CHARS:
        return f"is {len(label)} characters long; the limit is {MAX_LABEL_CHARS}"
    bad = not_text(label)
    if bad:
        return bad
    if _LINE_BREAK_RE.search(label):
        return "contains a line break; a token label is one line"
    return None
