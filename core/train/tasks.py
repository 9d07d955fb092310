"""The three toy tasks: batches of (inputs, targets, loss weights) and a fixed probe sequence.

Every batch is drawn from the run's own ``torch.Generator`` (never the global RNG), on the CPU,
so the same seed gives the same batches on any device. Targets are token ids; positions with
no target (nothing to predict) have loss weight 0.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import torch

from core.train.settings import MAX_TEXT_BYTES, TrainSettings, TrainSettingsError

UNK = "<unk>"
# words (letters, digits, apostrophes inside words) and single punctuation marks
_WORD_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


@dataclass(frozen=True)
class Batch:
    inputs: torch.Tensor     # (b, T) token ids
    targets: torch.Tensor    # (b, T) token ids (0 where weight is 0)
    weights: torch.Tensor    # (b, T) float: 1 where the loss counts


@dataclass(frozen=True)
class Task:
    """A task bound to its settings: draws batches and knows its probe and token names."""

    name: str
    vocab_size: int
    context_length: int
    probe: torch.Tensor                          # (T,) the sequence snapshots look at
    token_names: tuple[str, ...]                 # name of each token id
    stream: torch.Tensor | None = None           # next_word: the whole text as ids
    halves: bool = False                         # induction: report first/second-half losses
    seq_len: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def probe_tokens(self) -> tuple[str, ...]:
        return tuple(self.token_names[i] for i in self.probe.tolist())

    def batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        T = self.context_length
        if self.name == "next_word":
            starts = torch.randint(0, len(self.stream) - T, (batch_size,), generator=generator)
            offsets = torch.arange(T + 1)
            windows = self.stream[starts[:, None] + offsets]                     # (b, T + 1)
            inputs, targets = windows[:, :-1], windows[:, 1:]
            return Batch(inputs, targets, torch.ones(batch_size, T))
        if self.name == "previous_token":
            inputs = torch.randint(0, self.vocab_size, (batch_size, T), generator=generator)
            targets = torch.zeros_like(inputs)
            targets[:, 1:] = inputs[:, :-1]                                      # target at t is token t − 1
            weights = torch.ones(batch_size, T)
            weights[:, 0] = 0.0                                                  # nothing before position 0
            return Batch(inputs, targets, weights)
        # induction: n random tokens, repeated; predict the next token everywhere
        half = torch.randint(0, self.vocab_size, (batch_size, self.seq_len), generator=generator)
        inputs = torch.cat([half, half], dim=1)                                  # (b, 2n)
        targets = torch.zeros_like(inputs)
        targets[:, :-1] = inputs[:, 1:]
        weights = torch.ones(batch_size, T)
        weights[:, -1] = 0.0                                                     # the last token has no next one
        return Batch(inputs, targets, weights)

    def half_masks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Induction: (first, second) boolean masks over positions whose next token is in that half
        and is predictable (second) or not (first). (T,) each."""
        n, T = self.seq_len, self.context_length
        pos = torch.arange(T)
        first = pos < n - 1                                    # predicting tokens 1..n−1: random
        second = (pos >= n) & (pos < T - 1)                    # predicting tokens n+1..2n−1: copies
        return first, second


def tokenize_words(text: str) -> list[str]:
    """Lower-case words and punctuation marks, in order."""
    return _WORD_RE.findall(text.lower())


def read_text(path: str) -> str:
    """The file's text; TrainSettingsError("text_path", …) if it is not a small UTF-8 text.

    Read by core.files' bounded reader (as the embeddings CSV and lessons are): a FIFO, a device
    or a file over MAX_TEXT_BYTES is refused before a byte is read (no hang, no memory blow-up).
    """
    from core.files import read_text_file
    try:
        return read_text_file(path, MAX_TEXT_BYTES, "UTF-8 .txt file")
    except ValueError as exc:
        raise TrainSettingsError("text_path", str(exc)) from None


def word_vocabulary(words: list[str], vocab_size: int) -> tuple[str, ...]:
    """<unk> and the vocab_size − 1 most frequent words (ties: first seen first)."""
    counts = Counter(words)
    ranked = sorted(counts, key=lambda w: -counts[w])  # sorted is stable: ties keep first-seen order
    return (UNK,) + tuple(ranked[: vocab_size - 1])


def make_task(s: TrainSettings) -> Task:
    """The task for these settings; the probe is drawn from the seed (next_word: the text's start)."""
    g = torch.Generator().manual_seed(s.seed + 1)   # probe apart from the weights' and batches' streams
    if s.task == "next_word":
        words = tokenize_words(read_text(s.text_path))
        if len(words) < 4 * s.seq_len + 1:
            raise TrainSettingsError("text_path", f"has {len(words)} words; the next-word task needs at least "
                                     f"{4 * s.seq_len + 1} for seq_len {s.seq_len}")
        names = word_vocabulary(words, s.vocab_size)
        index = {w: i for i, w in enumerate(names)}
        stream = torch.tensor([index.get(w, 0) for w in words], dtype=torch.long)
        notes = ()
        if len(names) < s.vocab_size:
            notes = (f"the text has {len(names) - 1} distinct words; vocab_size {s.vocab_size} leaves ids unused",)
        return Task("next_word", s.vocab_size, s.seq_len, stream[: s.seq_len].clone(),
                    names + tuple(f"#{i}" for i in range(len(names), s.vocab_size)), stream=stream,
                    notes=notes)
    names = tuple(str(i) for i in range(s.vocab_size))
    if s.task == "previous_token":
        probe = torch.randint(0, s.vocab_size, (s.seq_len,), generator=g)
        return Task("previous_token", s.vocab_size, s.seq_len, probe, names)
    half = torch.randint(0, s.vocab_size, (s.seq_len,), generator=g)
    return Task("induction", s.vocab_size, 2 * s.seq_len, torch.cat([half, half]), names,
                halves=True, seq_len=s.seq_len)
