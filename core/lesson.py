"""Lesson files: settings, edited inputs and weights, and the current step, as versioned JSON.

A lesson reopens to the same step with the same numbers. Reading never changes anything
until the whole file has been checked: a malformed or future-version file raises
LessonError with a message saying what is wrong.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config import AttentionConfig, ConfigError
from core.inputs import Inputs

FORMAT = "attention-stepper-lesson"
VERSION = 1
MAX_BYTES = 64 * 2**20


class LessonError(Exception):
    """A lesson file that cannot be read; the message says why."""


@dataclass(frozen=True)
class Lesson:
    config: AttentionConfig
    inputs: Inputs | None = None                              # edited embeddings (None: from config)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # edited W_query/W_key/W_value
    step: str = ""                                            # step id shown when saved
    title: str = ""

    def to_json(self) -> str:
        data = {
            "format": FORMAT,
            "version": VERSION,
            "title": self.title,
            "config": self.config.to_dict(),
            "inputs": None if self.inputs is None else {
                "tokens": list(self.inputs.tokens), "values": self.inputs.array.tolist()},
            "weights": {k: np.asarray(v, dtype=np.float64).tolist() for k, v in self.weights.items()},
            "step": self.step,
        }
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def save_lesson(lesson: Lesson, path: str | Path) -> Path:
    from core.export import ExportError, write_text_atomic
    try:
        return write_text_atomic(path, lesson.to_json())
    except ExportError as exc:
        raise LessonError(str(exc)) from None


def parse_lesson(text: str, source: str = "lesson") -> Lesson:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LessonError(f"{source} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise LessonError(f"{source} is nested too deeply to be a lesson") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LessonError(f"{source} is not an Attention Stepper lesson (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise LessonError(f"{source} has no valid version number")
    if version > VERSION:
        raise LessonError(f"{source} was saved by a newer Attention Stepper (lesson version {version}); "
                          f"this one reads version {VERSION}. Update the app to open it.")
    if version < 1:
        raise LessonError(f"{source} has an unknown lesson version {version}")
    try:
        config = AttentionConfig.from_dict(data.get("config") or {})
    except ConfigError as exc:
        raise LessonError(f"{source}: config: {exc}") from None
    except TypeError as exc:
        raise LessonError(f"{source}: config: {exc}") from None
    inputs = None
    raw = data.get("inputs")
    if raw is not None:
        try:
            tokens = raw["tokens"]
            values = np.array(raw["values"], dtype=np.float64)
            if not all(isinstance(t, str) and t for t in tokens):
                raise ValueError("every token must be a non-empty string")
            if values.ndim != 2 or values.shape != (len(tokens), config.d_in):
                raise ValueError(f"values must be {len(tokens)} × d_in ({config.d_in})")
            if not np.isfinite(values).all():
                raise ValueError("values must be finite numbers")
            inputs = Inputs(tokens, values)
        except (KeyError, TypeError, ValueError) as exc:
            raise LessonError(f"{source}: inputs: {exc}") from None
    weights = {}
    raw_weights = data.get("weights") or {}
    if not isinstance(raw_weights, dict):
        raise LessonError(f"{source}: weights must map W_query/W_key/W_value to matrices")
    for name, value in raw_weights.items():
        if name not in ("W_query", "W_key", "W_value"):
            raise LessonError(f"{source}: weights: unknown matrix {name!r}")
        try:
            arr = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise LessonError(f"{source}: weights: {name} is not a matrix of numbers") from None
        if arr.shape != (config.d_in, config.d_out) or not np.isfinite(arr).all():
            raise LessonError(f"{source}: weights: {name} must be {config.d_in} × {config.d_out} finite numbers")
        weights[name] = arr
    step = data.get("step", "")
    title = data.get("title", "")
    if not isinstance(step, str) or not isinstance(title, str):
        raise LessonError(f"{source}: step and title must be strings")
    return Lesson(config, inputs, weights, step, title)


def load_lesson(path: str | Path) -> Lesson:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BYTES:
            raise LessonError(f"{p} is larger than {MAX_BYTES // 2**20} MiB; not a lesson file")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LessonError(f"{p} does not exist") from None
    except IsADirectoryError:
        raise LessonError(f"{p} is a folder, not a lesson file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LessonError(f"{p} cannot be read: {exc}") from None
    return parse_lesson(text, source=str(p))
