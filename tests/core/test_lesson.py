"""Lesson files round-trip; malformed and future-version files give a clear LessonError."""
import json

import numpy as np
import pytest

from core import AttentionConfig, build_trace
from core.inputs import Inputs
from core.lesson import Lesson, LessonError, load_lesson, parse_lesson, save_lesson


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
