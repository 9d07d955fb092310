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
SKIP_RATE = 0.25   # induction: the share of tokens set by the token two places back (see Task.batch)
# words (letters, digits, apostrophes inside words) and single punctuation marks
_WORD_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


@dataclass(frozen=True)
class Batch:
    inputs: torch.Tensor     # (b, T) token ids
    targets: torch.Tensor    # (b, T) token ids (0 where weight is 0)
    weights: torch.Tensor    # (b, T) float: 1 where the loss counts
    repeat: torch.Tensor | None = None   # induction: (b, T) bool, True where the next token is a copy


@dataclass(frozen=True)
class Task:
    """A task bound to its settings: draws batches and knows its probe and token names."""

    name: str
    vocab_size: int
    context_length: int
    probe: torch.Tensor                          # (T,) the sequence snapshots look at
    token_names: tuple[str, ...]                 # name of each token id
    stream: torch.Tensor | None = None           # next_word: the whole text as ids
    halves: bool = False                         # induction: report the random part's and the repeat's losses
    seq_len: int = 0                             # induction: the longest repeated length n
    min_len: int = 0                             # induction: the shortest repeated length
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
        # induction: a random prefix, then n random tokens, then the same n tokens again, with n
        # drawn per sequence, so the copy sits a different distance back in every sequence
        b = batch_size
        inputs = torch.randint(0, self.vocab_size, (b, T), generator=generator)
        # a quarter of the tokens follow a rule: the token two places back, plus 1 (mod vocab_size);
        # only a head that looks one place back can use it, so layer 0 learns a previous-token head
        follows = torch.rand(b, T, generator=generator) < SKIP_RATE
        for t in range(2, T):
            inputs[:, t] = torch.where(follows[:, t], (inputs[:, t - 2] + 1) % self.vocab_size, inputs[:, t])
        n = torch.randint(self.min_len, self.seq_len + 1, (b,), generator=generator)      # (b,)
        pos = torch.arange(T)
        start = T - n                                                            # (b,) the repeat's start
        in_repeat = pos[None, :] >= start[:, None]                               # (b, T)
        source = torch.where(in_repeat, pos[None, :] - n[:, None], pos[None, :])  # copy from n places back
        inputs = torch.gather(inputs, 1, source)
        targets = torch.zeros_like(inputs)
        targets[:, :-1] = inputs[:, 1:]
        weights = torch.ones(b, T)
        weights[:, -1] = 0.0                                                     # the last token has no next one
        repeat = in_repeat & (pos[None, :] < T - 1)                              # next token: a copy
        return Batch(inputs, targets, weights, repeat)

    def half_masks(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Induction: (random, repeat) boolean masks (b, T) over the counted positions whose next
        token cannot be predicted (the prefix and the first copy) or is a copy (the repeat)."""
        counted = batch.weights > 0
        return counted & ~batch.repeat, counted & batch.repeat


def probe_repeat_len(seq_len: int, min_len: int) -> int:
    """The probe's repeated length: three quarters of the way from the shortest to the longest, so
    the probe has a random prefix and its stripe is not at the longest training length."""
    return min_len + (3 * (seq_len - min_len) + 3) // 4


def induction_min_len(seq_len: int) -> int:
    """The shortest repeated length drawn for training sequences (the longest is seq_len)."""
    return max(2, seq_len // 4)


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
    # the probe: a prefix and one repeated stretch, all of its first T − n tokens distinct where the
    # vocabulary allows, so every token of the repeat has exactly one earlier occurrence
    T, lo = 2 * s.seq_len, induction_min_len(s.seq_len)
    n = probe_repeat_len(s.seq_len, lo)
    if s.vocab_size >= T - n:
        head = torch.randperm(s.vocab_size, generator=g)[: T - n]
    else:
        head = torch.randint(0, s.vocab_size, (T - n,), generator=g)
    probe = torch.cat([head, head[T - 2 * n:]])
    return Task("induction", s.vocab_size, T, probe, names, halves=True, seq_len=s.seq_len, min_len=lo)
