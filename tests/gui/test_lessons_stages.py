"""Lessons keep the bars of stages 6–8 (decode, tiled attention, RoPE): their options and sliders
go into the lesson file's "stages" and come back when it is opened, through a real file; an older
lesson without them opens those bars at their defaults; bad values there are one status line,
that stage's defaults, and the rest of the lesson as saved."""
from __future__ import annotations

import dataclasses
import json

from gui.external_stage import DecodeOptions, RopeOptions, TiledOptions
from tests.gui.fixtures import TRACE_TIMEOUT_MS, open_lesson_and_wait, step_index

DECODE = dict(variant="mla", num_heads=4, d_out=8, latent=4, new_tokens=3)
TILED = dict(block_rows=3, block_cols=2, fa2=True, causal=False, head=1)
ROPE = dict(base=500_000.0, form="interleaved", shift=5, head=1)


def _ready(win, stage: str) -> bool:
    state = win.model.external[stage]
    ctl = win.external[stage]
    return state.trace is not None and not ctl.busy and state.trace.config == ctl.config


def _visit(qtbot, win, step_id: str) -> None:
    win.model.go(step_index(win.model, step_id))
    qtbot.waitUntil(lambda: _ready(win, step_id.split(".")[0]), timeout=TRACE_TIMEOUT_MS)


def _set(qtbot, win, stage: str, **options) -> None:
    assert win.external[stage].set_options(**options)
    qtbot.waitUntil(lambda: _ready(win, stage), timeout=TRACE_TIMEOUT_MS)


def _all_defaults(qtbot, win) -> None:
    for stage, opt in (("decode", DecodeOptions()), ("tiled", TiledOptions()), ("rope", RopeOptions())):
        _set(qtbot, win, stage, **dataclasses.asdict(opt))


def _saved(qtbot, win, tmp_path):
    """The window with every bar away from its defaults and its slider moved; the lesson saved."""
    m = win.model
    _visit(qtbot, win, "decode.query")
    _set(qtbot, win, "decode", **DECODE)
    m.set_external_pointer("decode", m.external["decode"].trace.positions[1])
    _visit(qtbot, win, "tiled.tile")
    _set(qtbot, win, "tiled", **TILED)
    m.set_external_pointer("tiled", 2)
    _visit(qtbot, win, "rope.scores")
    _set(qtbot, win, "rope", **ROPE)
    m.set_external_pointer("rope", 3)
    want = {"decode": {**dataclasses.asdict(DecodeOptions(**DECODE)), "position": m.external["decode"].trace.positions[1]},
            "tiled": {**dataclasses.asdict(TiledOptions(**TILED)), "pointer": 2},
            "rope": {**dataclasses.asdict(RopeOptions(**ROPE)), "pointer": 3}}
    path = tmp_path / "bars.json"
    from gui.lessons import save_lesson
    assert "Saved the lesson" in save_lesson(win, str(path))
    return path, want


def test_the_bars_options_and_sliders_round_trip_through_a_lesson_file(qtbot, window, tmp_path):
    win, m = window, window.model
    path, want = _saved(qtbot, win, tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["stages"] == want and data["step"] == "rope.scores"
    # elsewhere, every bar back at its defaults
    _all_defaults(qtbot, win)
    m.go(0)
    assert open_lesson_and_wait(win, qtbot, path, show_box=False) == ""
    assert win.statusBar().currentMessage() == "Opened lesson bars.json: bars"
    assert win.external["decode"].options == DecodeOptions(**DECODE)
    assert win.external["tiled"].options == TiledOptions(**TILED)
    assert win.external["rope"].options == RopeOptions(**ROPE)
    # the bars show them
    assert win.external_bars["decode"].variant.currentData() == "mla" and win.external_bars["decode"].spins["latent"].value() == 4
    bar = win.external_bars["tiled"]
    assert bar.spins["block_rows"].value() == 3 and bar.form.currentData() is True and not bar.causal.isChecked()
    assert win.external_bars["rope"].form.currentData() == "interleaved" and win.external_bars["rope"].shift.value() == 5
    # the lesson's step is a RoPE step: its trace comes, with the slider where it was saved
    assert m.step.id == "rope.scores"
    qtbot.waitUntil(lambda: _ready(win, "rope") and m.external["rope"].pointer == 3, timeout=TRACE_TIMEOUT_MS)
    assert m.external["rope"].trace.config.base == 500_000.0 and m.external["rope"].trace.config.form == "interleaved"
    # the others compute on their first visit, then their sliders move to the saved place
    _visit(qtbot, win, "tiled.tile")
    qtbot.waitUntil(lambda: m.external["tiled"].pointer == 2, timeout=TRACE_TIMEOUT_MS)
    assert m.external["tiled"].trace.config.block_rows == 3 and m.external["tiled"].trace.config.fa2
    _visit(qtbot, win, "decode.query")
    qtbot.waitUntil(lambda: m.external["decode"].pointer == want["decode"]["position"], timeout=TRACE_TIMEOUT_MS)
    cfg = m.external["decode"].trace.config
    assert (cfg.variant, cfg.num_heads, cfg.d_out, cfg.latent, len(m.external["decode"].trace.positions)) == ("mla", 4, 8, 4, 3)
    assert win.external_bars["decode"].pointer.value() == want["decode"]["position"]


def test_an_older_lesson_without_the_bars_opens_them_at_their_defaults(qtbot, window, tmp_path):
    win = window
    path, _want = _saved(qtbot, win, tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["stages"]                              # what lessons saved before this held
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data), encoding="utf-8")
    assert win.external["decode"].options != DecodeOptions()
    assert open_lesson_and_wait(win, qtbot, old, show_box=False) == ""
    assert win.statusBar().currentMessage() == "Opened lesson old.json: bars"
    assert win.external["decode"].options == DecodeOptions()
    assert win.external["tiled"].options == TiledOptions() and win.external["rope"].options == RopeOptions()
    assert win.model.step.id == "rope.scores"
    assert win.external_bars["decode"].variant.currentData() == "gqa" and win.external_bars["tiled"].spins["block_rows"].value() == 2


def test_bad_bar_options_in_a_lesson_are_one_status_line_and_their_defaults(qtbot, window, tmp_path):
    win = window
    path, want = _saved(qtbot, win, tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    cases = {
        # 8 query heads over 3 K/V heads: refused by DecodeConfig, as the bar would
        "groups.json": ({**data["stages"], "decode": {**dataclasses.asdict(DecodeOptions()), "kv_groups": 3}},
                        "decode: kv groups:"),
        "type.json": ({**data["stages"], "decode": {**want["decode"], "num_heads": "eight"}},
                      "decode: num_heads must be a whole number, got 'eight'"),
        "unknown.json": ({**data["stages"], "decode": {**want["decode"], "heads": 4}},
                         "decode: unknown option 'heads'"),
        "pointer.json": ({**data["stages"], "decode": {**want["decode"], "position": -1}},
                         "decode: position must be a whole number ≥ 0"),
        "list.json": ({**data["stages"], "decode": [1, 2]}, "decode: must map option names to values, got list"),
    }
    for name, (stages, words) in cases.items():
        _all_defaults(qtbot, win)
        _set(qtbot, win, "decode", variant="mha", num_heads=2, d_out=4)      # not the defaults: they must come back
        win.model.go(0)
        (tmp_path / name).write_text(json.dumps({**data, "stages": stages}), encoding="utf-8")
        assert open_lesson_and_wait(win, qtbot, tmp_path / name, show_box=False) == "", name
        line = win.statusBar().currentMessage()
        assert line.startswith(f"Opened lesson {name}: bars; ") and words in line and "\n" not in line, (name, line)
        assert line.endswith("that bar opens at its defaults"), line
        assert win.external["decode"].options == DecodeOptions(), name                        # the bad stage: its defaults
        assert win.external["tiled"].options == TiledOptions(**TILED), name  # the rest as saved
        assert win.external["rope"].options == RopeOptions(**ROPE), name
        assert win.model.step.id == "rope.scores", name
    # two bad stages: one line naming both
    _all_defaults(qtbot, win)
    stages = {**data["stages"], "tiled": {**want["tiled"], "block_rows": 65}, "rope": {**want["rope"], "base": 1.0}}
    (tmp_path / "two.json").write_text(json.dumps({**data, "stages": stages}), encoding="utf-8")
    assert open_lesson_and_wait(win, qtbot, tmp_path / "two.json", show_box=False) == ""
    line = win.statusBar().currentMessage()
    assert "tiled: block rows:" in line and "rope: base:" in line and line.endswith("those bars open at their defaults")
    assert win.external["decode"].options == DecodeOptions(**DECODE)
    assert win.external["tiled"].options == TiledOptions() and win.external["rope"].options == RopeOptions()
    # "stages" that is not an object at all: every bar at its defaults, one line
    (tmp_path / "flat.json").write_text(json.dumps({**data, "stages": "decode"}), encoding="utf-8")
    assert open_lesson_and_wait(win, qtbot, tmp_path / "flat.json", show_box=False) == ""
    assert "stages must map decode/tiled/rope to their options, got str" in win.statusBar().currentMessage()
    assert win.external["decode"].options == DecodeOptions()
