"""A lesson saved with its training run: the JSON stays small and names the NPZ beside it; the pair
round-trips; a missing, damaged or other-version NPZ is one line and the lesson still opens."""
import json
from pathlib import Path

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


def test_the_bars_options_are_saved_with_the_run(tmp_path, run):
    from dataclasses import replace
    stages = {"tiled": {"block_rows": 3, "pointer": 2}}
    lesson_path, _npz = save_lesson_with_run(replace(_lesson(), stages=stages), run, tmp_path / "lesson.json")
    back = load_lesson(lesson_path)
    assert back.stages == stages and back.run is not None and back.title == "trained"


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


def _folder(root):
    from tests.core.snapshots import snapshot
    return snapshot(root)


@pytest.mark.parametrize("where", ["elsewhere", "parent"])
def test_a_run_linked_from_outside_the_lessons_folder_is_not_read(tmp_path, run, where, monkeypatch):
    """lesson.run.npz -> a run outside the lesson's folder (here a valid one): refused like ../x.run.npz."""
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    lesson_path, npz = save_lesson_with_run(_lesson(), run, lessons / "lesson.json", snapshot=0, layer=0)
    outside = tmp_path / ("secret.npz" if where == "parent" else "other/secret.npz")
    outside.parent.mkdir(exist_ok=True)
    npz.replace(outside)
    npz.symlink_to(outside if where == "elsewhere" else Path("..") / outside.name)
    before = _folder(tmp_path)
    import core.train.lessonrun as lessonrun
    monkeypatch.setattr(lessonrun, "load_run", lambda *a, **k: pytest.fail("read a run outside the folder"))
    back, note = open_lesson_run(load_lesson(lesson_path), lesson_path)
    assert back is None and "\n" not in note
    assert note == ("its run lesson.run.npz is a link to a file outside the lesson's folder, which is not read: "
                    "the lesson opened without it")
    assert _folder(tmp_path) == before


def test_a_run_linked_within_the_lessons_folder_is_read(tmp_path, run):
    lesson_path, npz = save_lesson_with_run(_lesson(), run, tmp_path / "lesson.json", snapshot=0, layer=0)
    npz.replace(tmp_path / "kept.npz")
    npz.symlink_to("kept.npz")
    back, note = open_lesson_run(load_lesson(lesson_path), lesson_path)
    assert note == "" and back.history_loss == run.history_loss


def test_a_crafted_run_is_one_line_and_the_lesson_opens_with_the_files_unchanged(tmp_path, run):
    from core.train.runfile import run_arrays
    from tests.core.train.runfile_craft import Member, members_of, write_npz
    lesson_path, npz = save_lesson_with_run(_lesson(), run, tmp_path / "lesson.json", snapshot=0, layer=0)
    members = members_of(run_arrays(run))
    members["history_loss"] = Member("history_loss", (2**24,), "<f8", zeros=2**27, deflate=True)
    write_npz(npz, members)
    before = _folder(tmp_path)
    back, note = open_lesson_run(load_lesson(lesson_path), lesson_path)
    assert back is None and "\n" not in note and note.endswith("the lesson opened without it")
    assert "history_loss has shape (16777216,), expected (8,)" in note
    assert _folder(tmp_path) == before


def test_a_lesson_and_its_run_get_the_permissions_the_umask_gives(tmp_path, run):
    import os
    import stat
    old = os.umask(0o022)
    try:
        first = save_lesson_with_run(_lesson(), run, tmp_path / "lesson.json", snapshot=0, layer=0)
        os.umask(0o027)
        second = save_lesson_with_run(_lesson(), run, tmp_path / "other.json")
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in first] == [0o644, 0o644]
    assert [stat.S_IMODE(p.stat().st_mode) for p in second] == [0o640, 0o640]
