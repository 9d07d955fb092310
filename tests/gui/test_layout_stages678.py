"""Stages 6–8 fit their pane (issue #21): every step of the decode (stage 6), tiled-attention
(stage 7) and RoPE (stage 8) stages, rendered offscreen at 1366×768 and 1920×1080 as the first
window on that screen (side tabs open), shows every map wholly inside the visible area of its
pane (no scroll bar), compared maps in one row, colour bars and every label drawn, no texts
overlapping, and (at 1920×1080) small maps' values printed, as tests/gui/test_layout.py's
``check_step`` reads them (``fits=True``): with the bars' defaults (decode: GQA, 8 query heads,
2 K/V heads), and for the decode stage also with MHA 8 heads, MQA, MLA, SWA, and MHA 16 heads
(16 heads scrolled at 1366×768 while MHA's maps were titled "K/V head 15" and each
thumbnail kept room for the "▶ " of a chosen head: 7 a row).
Before the decode grids were laid out as rows of heads (gui.decode_model.label_heads), GQA 8 × 2
failed at 1366×768: 6.3 needed 570 × 1242 px of an 857 × 556 pane, 6.7 452 × 894, 6.10 and 6.11
scrolled too, 6.4's compared maps stood in two rows.
The images go to ``$STEPPER_LAYOUT_SHOTS`` (default ``screenshots-tmp/layout/``)."""
from __future__ import annotations

import dataclasses

import pytest
from PySide6 import QtCore

from gui.steps import step_numbers
from tests.gui.fixtures import TRACE_TIMEOUT_MS, wait_until
from tests.gui.test_layout import SIZES, _settle, check_step, layout_window, shots_dir  # noqa: F401 (fixture)

DECODE_CASES = {
    "gqa8x2": dict(),                                   # the bar's defaults: GQA, 8 heads, 2 K/V heads
    "mha8": dict(variant="mha"),
    "mqa8": dict(variant="mqa"),
    "mla": dict(variant="mla"),
    "swa": dict(variant="swa"),
    "mha16": dict(variant="mha", num_heads=16, d_out=64),          # many heads: one row of 16 K/V heads, rows 8 + 8
}


def _steps(win, stage: str) -> list[int]:
    return [i for i, s in enumerate(win.controller.steps) if s.stage == stage]


def _check_stage(win, stage: str, case: str) -> list[str]:
    c = win.controller
    numbers = step_numbers()
    out = shots_dir()
    problems = []
    for w, h in SIZES:
        win.resize(w, h)
        win.reset_layout_for(QtCore.QRect(0, 0, w, h))       # the first window on that screen, side tabs open
        win.toggle_maps_only(False)
        for i in _steps(win, stage):
            c.go(i)
            _settle(win)
            step = c.steps[i]
            if step.view == "dial":          # rope.dial: the dial widget, no maps in the step view
                continue
            image = win.step_view.grab()
            image.save(str(out / f"stage678_{case}_{w}x{h}_{numbers[i]}_{step.id.split('.')[1]}.png"), "PNG")
            problems += [f"{w}x{h} {numbers[i]} {step.id}: {p}"
                         for p in check_step(win, values_expected=w >= 1920, fits=True)]
    return problems


def _decode_options(win, **options) -> None:
    from gui.external_stage import DecodeOptions
    d = win.external["decode"]
    c = win.controller
    c.go(_steps(win, "decode")[0])
    assert d.set_options(**{**dataclasses.asdict(DecodeOptions()), **options})
    wait_until(lambda: d.model.external["decode"].trace is not None and not d.busy
               and d.model.external["decode"].trace.config == d.config, TRACE_TIMEOUT_MS)


@pytest.mark.parametrize("case", list(DECODE_CASES))
def test_decode_steps_fit(layout_window, case):
    win = layout_window
    _decode_options(win, **DECODE_CASES[case])
    problems = _check_stage(win, "decode", case)
    win.controller.go(0)
    assert not problems, "\n".join(problems[:40]) + f"\n… {len(problems)} problems"


@pytest.mark.parametrize("stage", ["tiled", "rope"])
def test_tiled_and_rope_steps_fit(layout_window, stage):
    win = layout_window
    problems = _check_stage(win, stage, "default")
    win.controller.go(0)
    assert not problems, "\n".join(problems[:40]) + f"\n… {len(problems)} problems"


def test_a_panel_may_ask_for_more_grid_columns_and_colour_its_map_titles(qtbot):
    """What the decode steps use of gui.heatmap: ``extra["grid_cols"]`` lays 8 heads out in one row
    (not the square default of 3 × 3) where the width allows, fewer columns where it does not; a
    map's ``title_colour`` is the colour its title is drawn in (a chosen head's stays blue)."""
    import numpy as np

    from gui.heatmap import MatrixPanel, fit_grid_cols, grid_shape, panel_min_size
    from gui.matrices import MapData, MatrixData
    maps = [MapData(np.full((1, 3), float(h), np.float32), None, f"h{h} ← kv{h // 4}", (h,), h,
                    title_colour=("#c0392b", "#1e8449")[h // 4]) for h in range(8)]
    data = MatrixData(key=("decode", "attn_scores"), title="ω", symbol="ω", meaning="a score", maps=maps,
                      row_labels=("new",), col_labels=("a", "b", "c"), row_axis="new", col_axis="key",
                      kind="signed", levels=(-8.0, 8.0), extra={"grid_cols": 8})
    assert grid_shape(8) == (3, 3) and grid_shape(8, 8) == (8, 1) and grid_shape(8, 3) == (3, 3)
    one_row = panel_min_size(data, 8)
    assert fit_grid_cols(data, 2000) == 8 and one_row[1] < panel_min_size(data, 3)[1]
    assert fit_grid_cols(data, one_row[0] - 1) < 8
    plain = dataclasses.replace(data, extra={})
    assert fit_grid_cols(plain, 2000) == 3                    # without it: the square default
    panel = MatrixPanel()
    qtbot.addWidget(panel)
    panel.resize(one_row[0] + 20, one_row[1] + 20)
    panel.show()
    panel.set_matrix(data, 8)
    qtbot.wait(20)
    assert len({m.plot.geometry().top() for m in panel.maps}) == 1        # the 8 heads in one row
    panel.set_focused(True, 5)
    colours = [str(m.plot.titleLabel.opts.get("color")) for m in panel.maps]
    assert colours == ["#c0392b"] * 4 + ["#1e8449", "#2f6fd0", "#1e8449", "#1e8449"]
    panel.set_focused(False)
    assert [str(m.plot.titleLabel.opts.get("color")) for m in panel.maps] == ["#c0392b"] * 4 + ["#1e8449"] * 4
