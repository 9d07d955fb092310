"""Lesson files round-trip; malformed and future-version files give a clear LessonError."""
import json

import numpy as np
import pytest

from core import AttentionConfig, build_trace
from core.inputs import Inputs
from core.lesson import Lesson, LessonError, load_lesson, parse_lesson, save_lesson
from tests.core.snapshots import message_from_fifo


def test_lesson_round_trip_reproduces_the_numbers(tmp_path):
    cfg = AttentionConfig(embeddings="random", text="a b c", d_in=2, d_out=2, num_heads=1, seed=4)
    inputs = Inputs(("a", "b", "c"), [[1.0, 0.5], [0.25, -2.0], [3.0, 0.0]])
    W = {"W_key": np.array([[0.1, 0.2], [0.3, -0.4]])}
    lesson = Lesson(cfg, inputs, W, step="trainable.scores", title="my lesson")
    path = save_lesson(lesson, tmp_path / "l.json")
    back = load_lesson(path)
    assert back.config == cfg and back.inputs == inputs and back.step == "trainable.scores"
    assert np.array_equal(back.weights["W_key"], W["W_key"])
    t1 = build_trace(cfg, inputs, weights_override=W)
    t2 = build_trace(back.config, back.inputs, weights_override=back.weights)
    for item in t1:
        assert np.array_equal(item.numpy(), t2[item.key].numpy()), item.key
    assert np.allclose(t1["trainable", "W_key"].numpy(), W["W_key"])
    assert np.allclose(t1["trainable", "keys"].numpy(), inputs.array @ W["W_key"], atol=1e-6)


@pytest.mark.parametrize("text,words", [
    ("{not json", "not valid JSON"),
    ("[]", "not an Attention Stepper lesson"),
    ('{"format": "attention-stepper-lesson", "version": 99, "config": {}}', "newer Attention Stepper"),
    ('{"format": "attention-stepper-lesson", "version": "1"}', "no valid version"),
    ('{"format": "attention-stepper-lesson", "version": 1, "config": {"d_out": 3}}', "num_heads"),
    ('{"format": "attention-stepper-lesson", "version": 1, "config": {"bogus": 1}}', "unknown field"),
    ('{"format": "attention-stepper-lesson", "version": 1, "config": {}, "inputs": {"tokens": ["a"], "values": [[1]]}}',
     "inputs"),
    ('{"format": "attention-stepper-lesson", "version": 1, "config": {}, "weights": {"W_query": [[1, 2]]}}',
     "W_query must be 3 × 2"),
])
def test_malformed_lessons_are_refused_with_a_reason(text, words):
    with pytest.raises(LessonError, match=words):
        parse_lesson(text)


def test_missing_and_folder(tmp_path):
    with pytest.raises(LessonError, match="does not exist"):
        load_lesson(tmp_path / "nope.json")
    with pytest.raises(LessonError, match="folder"):
        load_lesson(tmp_path)


def test_saved_file_is_versioned_json(tmp_path):
    path = save_lesson(Lesson(AttentionConfig()), tmp_path / "x.json")
    data = json.loads(path.read_text())
    assert data["format"] == "attention-stepper-lesson" and data["version"] == 1 and data["inputs"] is None


def test_weight_override_of_the_wrong_shape_is_a_config_error():
    from core import ConfigError
    with pytest.raises(ConfigError, match="W_query: must be d_in × d_out = 3 × 2"):
        build_trace(AttentionConfig(), weights_override={"W_query": np.zeros((2, 2))})
    with pytest.raises(ConfigError, match="W_out"):
        build_trace(AttentionConfig(), weights_override={"W_out": np.zeros((3, 2))})


# ----------------------------------------------------------------------------- bad lesson files (issue 10)

def _lesson(**changes) -> dict:
    data = json.loads(Lesson(AttentionConfig(), step="trainable.scores", title="t").to_json())
    data.update(changes)
    return data


def _config(**changes) -> dict:
    return _lesson(config={**AttentionConfig().to_dict(), **changes})


@pytest.mark.parametrize("text, words", [
    # a 5,000-digit seed: json refused it with a ValueError the app did not catch (crash dialog)
    (json.dumps(_config(seed=0)).replace('"seed": 0', '"seed": ' + "9" * 5000),
     "config: seed: must be between 0 and 9223372036854775807, got a number of about 5000 digits"),
    (json.dumps(_config(dropout_seed=0)).replace('"dropout_seed": 0', '"dropout_seed": -' + "9" * 300),
     "dropout_seed: must be between 0 and"),
    (json.dumps(_config(dropout=0)).replace('"dropout": 0', '"dropout": ' + "9" * 5000), "dropout: must be in"),
    (json.dumps(_lesson()).replace('"version": 1', '"version": ' + "9" * 5000), "newer Attention Stepper"),
    # lone surrogates (JSON \\ud800 escapes) failed later, in the worker, when encoded
    (json.dumps(_config(embeddings="random", text="caf\udce9 au lait")), "config: text: contains the byte 0xE9"),
    (json.dumps(_config(embeddings="random", text="a \ud800 b")), r"text: contains a lone surrogate U\+D800"),
    (json.dumps(_lesson(title="x\udfff")), r"title contains a lone surrogate U\+DFFF"),
    (json.dumps(_lesson(step="a\ud800")), "step contains a lone surrogate"),
    (json.dumps(_lesson(inputs={"tokens": ["ok", "b\ud800", "c"], "values": [[1, 2, 3]] * 3})),
     "inputs: token 2 contains a lone surrogate"),
    # tokens as a string was taken letter by letter
    (json.dumps(_lesson(inputs={"tokens": "abc", "values": [[1, 2, 3]] * 3})), "tokens must be a list"),
    (json.dumps(_lesson(inputs={"tokens": ["a", "b\nc"], "values": [[1, 2, 3]] * 2})), "token 2 contains a line break"),
    (json.dumps(_lesson(inputs={"tokens": [], "values": []})), "0 tokens; between 1 and 4096"),
    (json.dumps(_lesson(inputs={"tokens": ["a"], "values": [[1, True, 3]]})), r"values\[0\]\[1\] is True, not a number"),
    (json.dumps(_lesson(inputs={"tokens": ["a"], "values": [[1, "2", 3]]})), r"values\[0\]\[1\] is '2', not a number"),
    (json.dumps(_lesson(inputs={"tokens": ["a"], "values": [[1, 2, 3]]})).replace("[1, 2, 3]", "[1, 2, 1" + "0" * 400 + "]"),
     r"values\[0\]\[2\] must be a finite number between"),
    (json.dumps(_lesson(weights={"W_key": [[1, 2], [3, 4], [5, 1e300]]})), r"W_key\[2\]\[1\] must be a finite number"),
    (json.dumps(_lesson(inputs={"tokens": ["a"], "values": "123"})), "values must be 1 × 3 numbers"),
    (json.dumps(_lesson(title="x" * 1001)), "title is 1001 characters long; the limit is 1000"),
    (json.dumps(_lesson(title=["x"])), "title must be a string"),
])
def test_bad_lesson_fields_are_refused_by_name(text, words):
    with pytest.raises(LessonError, match=words):
        parse_lesson(text)


def test_a_lesson_with_a_bom_opens(tmp_path):
    """CSV import accepted a UTF-8 BOM; lessons refused it ("not valid JSON")."""
    lesson = Lesson(AttentionConfig(seed=7), step="trainable.scores", title="café")
    p = tmp_path / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + lesson.to_json().encode("utf-8"))
    back = load_lesson(p)
    assert back.config == lesson.config and back.title == "café" and back.step == "trainable.scores"


def test_a_lesson_larger_than_the_bound_is_refused_before_reading(tmp_path, monkeypatch):
    """A 50 MB title froze the window; now the size is checked before the file is read."""
    from core import lesson as lesson_module
    p = tmp_path / "big.json"
    p.write_text(json.dumps(_lesson(title="x" * (lesson_module.MAX_BYTES + 10))))
    read = []
    monkeypatch.setattr(lesson_module, "parse_lesson", lambda *a, **k: read.append(a))
    with pytest.raises(LessonError, match="MiB; a lesson file is at most 16 MiB"):
        load_lesson(p)
    assert read == []


def test_a_lesson_the_app_would_refuse_is_not_saved(tmp_path):
    """Every saved lesson opens again: one over the size bound is refused when saving."""
    n = 1024
    cfg = AttentionConfig(embeddings="random", text="a b", d_in=n, d_out=n, num_heads=1)
    big = Lesson(cfg, weights={name: np.full((n, n), 0.123456789012345) for name in ("W_query", "W_key", "W_value")})
    with pytest.raises(LessonError, match="a lesson is at most 16 MiB"):
        save_lesson(big, tmp_path / "big.json")
    assert list(tmp_path.iterdir()) == []


def test_a_csv_path_that_is_not_utf8_round_trips(tmp_path):
    """A CSV file name with a Latin-1 byte (kept by Python as \\udce9) is saved as an escape, not a crash."""
    cfg = AttentionConfig(embeddings=str(tmp_path / "emb\udce9.csv"), text="a b", d_in=2)
    path = save_lesson(Lesson(cfg), tmp_path / "l.json")
    assert path.read_bytes().isascii()
    assert load_lesson(path).config == cfg


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no named pipes here")
def test_a_fifo_as_the_lesson_path_is_refused_without_blocking(tmp_path):
    message = message_from_fifo(tmp_path / "lesson.json", load_lesson, LessonError, b"{}")
    assert "is a named pipe (FIFO), not a file; choose a lesson file" in message


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_a_saved_lesson_gets_the_permissions_the_umask_gives(tmp_path, mask):
    """A lesson saved alone (no run beside it) is written like every other file of the app:
    0o666 less the umask (mkstemp's 0600 made a lesson unreadable to the user's group)."""
    import os
    import stat
    old = os.umask(mask)
    try:
        path = save_lesson(Lesson(AttentionConfig()), tmp_path / "x.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_the_bars_options_of_stages_6_to_8_round_trip_and_older_lessons_have_none(tmp_path):
    """"stages" is kept as read (the window checks it); a lesson without it (older) reads as None,
    and one saved without any writes no "stages" key (files for older apps stay as they were)."""
    stages = {"decode": {"variant": "mla", "latent": 4, "position": 7}, "rope": {"base": 500000.0, "form": "interleaved"}}
    path = save_lesson(Lesson(AttentionConfig(), step="decode.query", stages=stages), tmp_path / "l.json")
    assert json.loads(path.read_text())["stages"] == stages
    assert load_lesson(path).stages == stages
    plain = save_lesson(Lesson(AttentionConfig()), tmp_path / "plain.json")
    assert "stages" not in json.loads(plain.read_text()) and load_lesson(plain).stages is None
    odd = json.loads(path.read_text())
    odd["stages"] = [1, 2]                      # not the window's format: kept, for the window to refuse
    assert parse_lesson(json.dumps(odd)).stages == [1, 2]
