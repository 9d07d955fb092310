"""A lesson saved with its training run: the JSON stays small and names the NPZ beside it; the pair
round-trips; a missing, damaged or other-version NPZ is one line and the lesson still opens."""
import json

import numpy as np
import pytest

from core.config import AttentionConfig
from core.lesson import Lesson, LessonError, load_lesson, parse_lesson
from core.train.lessonrun import open_lesson_run, save_lesson_with_run
from core.train.runner import train
from tests.core.train.conftest import small


@pytest.fixture(scope="module")
def run():
    return train(small(steps=8, snapshot_every=4))


def _lesson():
    return Lesson(AttentionConfig(), step="multihead.weights", title="trained")


def test_round_trip_without_retraining(tmp_path, run):
    lesson_path, npz = save_lesson_with_run(_lesson(), run, tmp_path / "lesson.json", snapshot=1, layer=1)
    assert npz == tmp_path / "lesson.run.npz" and sorted(p.name for p in tmp_path.iterdir()) == \
        ["lesson.json", "lesson.run.npz"]
    data = json.loads(lesson_path.read_text())
    assert data["run"] == {"file": "lesson.run.npz", "version": 1, "snapshot": 1, "layer": 1}
    assert lesson_path.stat().st_size < 2000            # the snapshots are in the NPZ, not the JSON
    lesson = load_lesson(lesson_path)
    back, note = open_lesson_run(lesson, lesson_path)
    assert note == "" and back.settings == run.settings and back.probe_tokens == run.probe_tokens
    for a, b in zip(back.snapshots, run.snapshots):
        assert a.step == b.step and np.array_equal(a.attn_weights, b.attn_weights)
        assert all(np.array_equal(a.weights[k], b.weights[k]) for k in b.weights)
    assert back.history_loss == run.history_loss


@pytest.mark.parametrize("damage, expected", [
    (lambda npz: npz.unlink(), "lesson.run.npz is missing beside the lesson"),
    (lambda npz: npz.write_bytes(npz.read_bytes()[:300]), "could not be read"),
    (lambda npz: npz.write_text("not a zip"), "could not be read"),
])
def test_a_missing_or_damaged_run_is_one_line_and_the_lesson_opens(tmp_path, run, damage, expected):
    lesson_path, npz = save_lesson_with_run(_lesson(), run, tmp_path / "lesson.json", snapshot=0, layer=0)
    damage(npz)
    lesson = load_lesson(lesson_path)                   # the lesson itself is fine
    assert lesson.title == "trained" and lesson.run.file == "lesson.run.npz"
    back, note = open_lesson_run(lesson, lesson_path)
    assert back is None and expected in note and "\n" not in note and "opened without it" in note


def test_another_run_version_is_refused_by_name(tmp_path, run):
    lesson_path, _ = save_lesson_with_run(_lesson(), run, tmp_path / "l.json")
    data = json.loads(lesson_path.read_text())
    data["run"]["version"] = 7
    lesson_path.write_text(json.dumps(data))
    back, note = open_lesson_run(load_lesson(lesson_path), lesson_path)
    assert back is None and "version 7" in note


@pytest.mark.parametrize("ref, expected", [
    ({"file": "../x.run.npz", "version": 1}, "file must be a file name"),
    ({"file": "x.npz", "version": 1}, "file must be a file name"),
    ({"file": "x.run.npz", "version": "1"}, "version must be a whole number"),
    ({"file": "x.run.npz", "version": 1, "snapshot": 2}, "snapshot and layer go together"),
    ("x.run.npz", "run must map"),
])
def test_a_malformed_run_reference_is_a_lesson_error(ref, expected):
    data = json.loads(_lesson().to_json())
    data["run"] = ref
    with pytest.raises(LessonError, match=expected):
        parse_lesson(json.dumps(data))


def test_a_failed_save_leaves_the_earlier_pair(tmp_path, run, monkeypatch):
    first, npz = save_lesson_with_run(_lesson(), run, tmp_path / "lesson.json", snapshot=0, layer=0)
    before = (first.read_bytes(), npz.read_bytes())
    import os
    real = os.replace

    def fail_on_json(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", fail_on_json)
    other = train(small(steps=4, snapshot_every=4, seed=9))
    with pytest.raises(LessonError, match="No space left"):
        save_lesson_with_run(_lesson(), other, tmp_path / "lesson.json", snapshot=1, layer=1)
    assert (first.read_bytes(), npz.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lesson.json", "lesson.run.npz"]
