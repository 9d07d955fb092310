"""Lesson files: settings, edited inputs and weights, and the current step, as versioned JSON.

A lesson reopens to the same step with the same numbers. Reading never changes anything
until the whole file has been checked: a malformed or future-version file raises
LessonError with a message saying what is wrong.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config import AttentionConfig, ConfigError, shown_value
from core.inputs import Inputs
from core.tokens import label_problem, not_text

FORMAT = "attention-stepper-lesson"
VERSION = 1
MAX_BYTES = 16 * 2**20     # parsed in one GIL-holding json.loads (~0.3 s here): edits of all three
                           # 384 × 384 weights fit; save_lesson refuses what load_lesson would
MAX_TITLE_CHARS = 1000     # shown in the status bar
MAX_STEP_CHARS = 200       # a step id such as "multihead.weights"
_MAX_INT_DIGITS = 100      # JSON integers longer than this are kept as an out-of-range stand-in


class LessonError(Exception):
    """A lesson file that cannot be read; the message says why."""


RUN_SUFFIX = ".run.npz"


@dataclass(frozen=True)
class RunRef:
    """A training run saved beside the lesson (core.train.lessonrun): ``file`` in the lesson's
    folder, its run-file ``version``, and the snapshot and layer the stepper's stage 4 shows (or None)."""

    file: str
    version: int
    snapshot: int | None = None
    layer: int | None = None

    def to_dict(self) -> dict:
        return {"file": self.file, "version": self.version, "snapshot": self.snapshot, "layer": self.layer}


def _run_ref(raw, source: str) -> RunRef:
    if not isinstance(raw, dict):
        raise LessonError(f"{source}: run must map \"file\", \"version\", \"snapshot\" and \"layer\"")
    name = raw.get("file")
    if not isinstance(name, str) or not name.endswith(RUN_SUFFIX) or "/" in name or "\\" in name \
            or name.startswith(".") or len(name) > 255 or not_text(name):
        raise LessonError(f"{source}: run: file must be a file name ending in {RUN_SUFFIX} beside the lesson, "
                          f"got {shown_value(name)}")
    numbers = {}
    for key, low, optional in (("version", 1, False), ("snapshot", 0, True), ("layer", 0, True)):
        value = raw.get(key)
        if value is None and optional:
            numbers[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 10**6:
            raise LessonError(f"{source}: run: {key} must be a whole number ≥ {low}, got {shown_value(value)}")
        numbers[key] = value
    if (numbers["snapshot"] is None) != (numbers["layer"] is None):
        raise LessonError(f"{source}: run: snapshot and layer go together (both or neither)")
    return RunRef(name, numbers["version"], numbers["snapshot"], numbers["layer"])


@dataclass(frozen=True)
class Lesson:
    config: AttentionConfig
    inputs: Inputs | None = None                              # edited embeddings (None: from config)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # edited W_query/W_key/W_value
    step: str = ""                                            # step id shown when saved
    title: str = ""
    run: RunRef | None = None                                 # a training run saved beside it
    # the bars' options of stages 6–8 ({"decode": {...}, "tiled": {...}, "rope": {...}}), JSON as
    # read: the window checks them when it opens the lesson (gui.lessons; bad ones: its defaults)
    stages: object = None

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
        if self.run is not None:
            data["run"] = self.run.to_dict()
        if self.stages:
            data["stages"] = self.stages
        text = json.dumps(data, indent=1, ensure_ascii=False)
        if not_text(text):      # a CSV path with bytes that are not UTF-8: written as \udcXX escapes
            text = json.dumps(data, indent=1)
        return text + "\n"


def save_lesson(lesson: Lesson, path: str | Path) -> Path:
    from core.export import ExportError, write_text_atomic
    text = lesson.to_json()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:      # it could not be opened again: say so now, not when it is opened
        raise LessonError(f"the lesson would take {size / 2**20:.0f} MiB; a lesson is at most "
                          f"{MAX_BYTES // 2**20} MiB: reset the edited inputs or weights, or use a smaller d_in or d_out")
    try:
        return write_text_atomic(path, text)
    except ExportError as exc:
        raise LessonError(str(exc)) from None


def _parse_int(digits: str) -> int:
    """JSON integers: past _MAX_INT_DIGITS (no field takes one; int() refuses 4,300+ digits)
    a number of the same sign and length, so that the field's own check refuses it by name."""
    if len(digits.lstrip("-")) <= _MAX_INT_DIGITS:
        return int(digits)
    return (-1 if digits.startswith("-") else 1) * 10 ** (len(digits.lstrip("-")) - 1)


def _text_field(data: dict, key: str, limit: int, source: str) -> str:
    value = data.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise LessonError(f"{source}: {key} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise LessonError(f"{source}: {key} is {len(value)} characters long; the limit is {limit}")
    if not_text(value):
        raise LessonError(f"{source}: {key} {not_text(value)}")
    return value


def _matrix(value, rows: int, cols: int, what: str) -> np.ndarray:
    """A rows × cols list of lists of finite JSON numbers (not true/false) as float64; ValueError says why."""
    from core.config import MAX_ABS_EMBEDDING
    if not isinstance(value, list) or len(value) != rows or not all(isinstance(r, list) and len(r) == cols for r in value):
        raise ValueError(f"{what} must be {rows} × {cols} numbers (a list of {rows} rows of {cols})")
    for i, row in enumerate(value):
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{what}[{i}][{j}] is {shown_value(v)}, not a number")
            if not abs(v) <= MAX_ABS_EMBEDDING:     # also nan and inf; compared before float() can overflow
                raise ValueError(f"{what}[{i}][{j}] must be a finite number between -{MAX_ABS_EMBEDDING:g} "
                                 f"and {MAX_ABS_EMBEDDING:g}, got {shown_value(v)}")
    return np.array(value, dtype=np.float64).reshape(rows, cols)   # (rows, cols) also when rows == 0


def _inputs(raw, config: AttentionConfig, source: str) -> Inputs:
    from core.config import MAX_TOKENS
    if not isinstance(raw, dict):
        raise LessonError(f"{source}: inputs must map \"tokens\" and \"values\"")
    tokens = raw.get("tokens")
    if not isinstance(tokens, list):   # a string would be taken letter by letter
        raise LessonError(f"{source}: inputs: tokens must be a list of token strings, got {type(tokens).__name__}")
    if not 1 <= len(tokens) <= MAX_TOKENS:
        raise LessonError(f"{source}: inputs: {len(tokens)} tokens; between 1 and {MAX_TOKENS} are allowed")
    for i, tok in enumerate(tokens):
        problem = label_problem(tok)
        if problem:
            raise LessonError(f"{source}: inputs: token {i + 1} {problem}")
    try:
        values = _matrix(raw.get("values"), len(tokens), config.d_in, "values")
    except ValueError as exc:
        raise LessonError(f"{source}: inputs: {exc} (one row of d_in = {config.d_in} per token)") from None
    return Inputs(tokens, values)


def parse_lesson(text: str, source: str = "lesson") -> Lesson:
    if not isinstance(text, str):
        raise LessonError(f"{source} is not text")
    if len(text) > MAX_BYTES:
        raise LessonError(f"{source} is longer than {MAX_BYTES // 2**20} MiB; not a lesson file")
    try:
        data = json.loads(text.removeprefix("\ufeff"), parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise LessonError(f"{source} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise LessonError(f"{source} is nested too deeply to be a lesson") from None
    except ValueError as exc:   # anything else json refuses, in one line
        raise LessonError(f"{source} is not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LessonError(f"{source} is not an Attention Stepper lesson (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise LessonError(f"{source} has no valid version number")
    if version > VERSION:
        raise LessonError(f"{source} was saved by a newer Attention Stepper (lesson version {shown_value(version)}); "
                          f"this one reads version {VERSION}. Update the app to open it.")
    if version < 1:
        raise LessonError(f"{source} has an unknown lesson version {shown_value(version)}")
    try:
        config = AttentionConfig.from_dict(data.get("config") or {})
    except ConfigError as exc:
        raise LessonError(f"{source}: config: {exc}") from None
    except TypeError as exc:
        raise LessonError(f"{source}: config: {exc}") from None
    raw = data.get("inputs")
    inputs = None if raw is None else _inputs(raw, config, source)
    weights = {}
    raw_weights = data.get("weights") or {}
    if not isinstance(raw_weights, dict):
        raise LessonError(f"{source}: weights must map W_query/W_key/W_value to matrices")
    for name, value in raw_weights.items():
        if name not in ("W_query", "W_key", "W_value"):
            raise LessonError(f"{source}: weights: unknown matrix {shown_value(name)}")
        try:
            weights[name] = _matrix(value, config.d_in, config.d_out, name)
        except ValueError as exc:
            raise LessonError(f"{source}: weights: {exc} (d_in × d_out = {config.d_in} × {config.d_out})") from None
    step = _text_field(data, "step", MAX_STEP_CHARS, source)
    title = _text_field(data, "title", MAX_TITLE_CHARS, source)
    run = None if data.get("run") is None else _run_ref(data["run"], source)
    # older lessons have no "stages" (the bars open at their defaults); what is there is checked by
    # the window (gui.lessons.read_stage_options): a bad value costs those options, not the lesson
    return Lesson(config, inputs, weights, step, title, run, data.get("stages"))


def load_lesson(path: str | Path) -> Lesson:
    """Read and check a lesson file: a regular UTF-8 file (BOM or not) of at most MAX_BYTES.

    Never blocks on a FIFO or device (checked before opening); every problem is a LessonError.
    """
    from core.files import read_text_file, shown_path
    try:
        text = read_text_file(path, MAX_BYTES, "lesson file")
    except ValueError as exc:
        raise LessonError(str(exc)) from None
    return parse_lesson(text, source=shown_path(path))
