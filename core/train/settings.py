"""The frozen, validated settings of one training run of the toy attention model.

Torch-free, so the Train view can validate what a learner types before torch has loaded.
Every invalid value raises :class:`TrainSettingsError` naming the field.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from core.config import ConfigError

TASKS = ("previous_token", "induction", "next_word")
TASK_TITLES = {
    "previous_token": "Previous token",
    "induction": "Induction (repeated random tokens)",
    "next_word": "Next word on a text",
}
TASK_EXPLANATIONS = {
    "previous_token": (
        "Each sequence is random tokens; at every position the model must output the token just "
        "before it. The only way is to look one position back, so one layer learns a previous-token "
        "head: its attention weights become a bright diagonal just below the main diagonal."),
    "induction": (
        "Each sequence is random tokens that end in a stretch of n tokens written twice; n changes "
        "from sequence to sequence (n/4 to n), so the copy is never the same distance back. In the "
        "repeat, the next token is the one that followed this token's earlier copy. A two-layer "
        "model learns this with two heads (Olsson et al., 2022): a previous-token head in layer 0 "
        "(each position looks one place back and stores that token), then an induction head in "
        "layer 1 that finds the position whose previous token is the current token and copies what "
        "sits there: in the repeat, a stripe n − 1 places left of the diagonal. A quarter of the "
        "tokens are the token two places back plus 1, which only a previous-token head can use: it "
        "gives layer 0 its reason to look back first. Watch the induction curve jump: the phase change."),
    "next_word": (
        "The model reads a text you choose (a UTF-8 .txt file, e.g. a public-domain short story) "
        "split into words and punctuation, and predicts the next word. The heads learn mixtures of "
        "patterns: the previous word, the start of the sentence, repeated names. The app ships no "
        "text: pick a file."),
}
DEVICES = ("auto", "cpu", "cuda")

# Bounds that keep a typo from allocating the machine away or running for hours.
MAX_VOCAB = 5000
MAX_SEQ_LEN = 256          # the probe and every training sequence have at most 2 × this many tokens
MAX_D_MODEL = 1024
MAX_HEADS = 16              # the Train view draws every head: at most 8 × 16 maps
MAX_LAYERS = 8
MAX_STEPS = 100_000
MAX_BATCH = 1024
MAX_SEED = 2**63 - 1
MAX_TEXT_BYTES = 2_000_000  # a short story is ~20 kB; a novel ~1 MB
MAX_SNAPSHOTS = 2000


class TrainSettingsError(ConfigError):
    """An invalid training setting; ``field`` names it (as ConfigError does for the trace)."""


@dataclass(frozen=True)
class TrainSettings:
    """One training run: task, model sizes, optimiser and snapshots."""

    task: str = "induction"        # one of TASKS
    vocab_size: int = 64           # token ids 0..vocab_size-1 (next_word: most frequent words + <unk>)
    seq_len: int = 16              # n: tokens per sequence (induction: the longest repeat; 2n in the model)
    d_model: int = 64              # embedding width = the attention's d_in = d_out
    num_heads: int = 4             # heads per layer; must divide d_model
    num_layers: int = 2            # attention layers, each with a residual connection
    lr: float = 3e-3               # Adam learning rate
    steps: int = 600               # optimiser steps
    batch_size: int = 64           # sequences per step
    seed: int = 0                  # seeds the weights, the batches and the probe sequence
    device: str = "auto"           # auto = cuda when available, cpu or cuda
    snapshot_every: int = 10       # a snapshot before step 1, every k steps and after the last
    text_path: str = ""            # next_word only: the UTF-8 .txt file to train on

    def __post_init__(self):
        validate(self)

    @property
    def context_length(self) -> int:
        """Tokens the model sees at once (the mask's size)."""
        return 2 * self.seq_len if self.task == "induction" else self.seq_len

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    def replace(self, **changes) -> "TrainSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainSettingsError(unknown[0], "is not a training setting")
        return cls(**data)


# What each task starts from in the Train view and the CLI: small enough to show its pattern
# on 2 CPU cores in seconds.
TASK_DEFAULTS = {
    "induction": {},
    "previous_token": dict(vocab_size=32, seq_len=16, d_model=32, num_heads=2, num_layers=1, lr=3e-3,
                           steps=150, batch_size=64, snapshot_every=5),
    "next_word": dict(vocab_size=500, seq_len=32, d_model=64, num_heads=4, num_layers=2, lr=3e-3,
                      steps=300, batch_size=32, snapshot_every=10),
}


def defaults_for(task: str, **changes) -> TrainSettings:
    """The task's default settings with ``changes`` (next_word needs text_path among them)."""
    if task not in TASKS:
        raise TrainSettingsError("task", f"must be one of {', '.join(TASKS)}, got {task!r}")
    return TrainSettings(task=task, **{**TASK_DEFAULTS[task], **changes})


def _int(s, name: str, lo: int, hi: int) -> None:
    v = getattr(s, name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise TrainSettingsError(name, f"must be a whole number, got {v!r}")
    if not lo <= v <= hi:
        raise TrainSettingsError(name, f"must be between {lo} and {hi}, got {v}")


def validate(s: TrainSettings) -> None:
    """Raise TrainSettingsError for the first invalid field (in the dataclass's order)."""
    if s.task not in TASKS:
        raise TrainSettingsError("task", f"must be one of {', '.join(TASKS)}, got {s.task!r}")
    _int(s, "vocab_size", 2 if s.task != "next_word" else 3, MAX_VOCAB)
    _int(s, "seq_len", 2, MAX_SEQ_LEN)
    _int(s, "d_model", 1, MAX_D_MODEL)
    _int(s, "num_heads", 1, MAX_HEADS)
    if s.d_model % s.num_heads:
        raise TrainSettingsError("num_heads", f"must divide d_model ({s.d_model}), got {s.num_heads}")
    _int(s, "num_layers", 1, MAX_LAYERS)
    if isinstance(s.lr, bool) or not isinstance(s.lr, (int, float)) or not math.isfinite(s.lr) \
            or not 0 < s.lr <= 1:
        raise TrainSettingsError("lr", f"must be a number in (0, 1], got {s.lr!r}")
    _int(s, "steps", 1, MAX_STEPS)
    _int(s, "batch_size", 1, MAX_BATCH)
    _int(s, "seed", 0, MAX_SEED)
    if s.device not in DEVICES:
        raise TrainSettingsError("device", f"must be one of {', '.join(DEVICES)}, got {s.device!r}")
    _int(s, "snapshot_every", 1, MAX_STEPS)
    if s.steps // s.snapshot_every + 2 > MAX_SNAPSHOTS:
        raise TrainSettingsError("snapshot_every", f"gives more than {MAX_SNAPSHOTS} snapshots; "
                                 f"use at least {-(-s.steps // (MAX_SNAPSHOTS - 2))}")
    if not isinstance(s.text_path, str):
        raise TrainSettingsError("text_path", f"must be a file name, got {s.text_path!r}")
    if s.task == "next_word" and not s.text_path.strip():
        raise TrainSettingsError("text_path", "the next-word task needs a UTF-8 .txt file; choose one")

