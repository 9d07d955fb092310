"""Stages 6–8 fit their pane (issue #21): every step of the decode (stage 6), tiled-attention
(stage 7) and RoPE (stage 8) stages, rendered offscreen at 1366×768 and 1920×1080 as the first
window on that screen (side tabs open), shows every map wholly inside the visible area of its
pane (no scroll bar), compared maps in one row, colour bars and every label drawn, no texts
overlapping, and (at 1920×1080) small maps' values printed, as tests/gui/test_layout.py's
``check_step`` reads them (``fits=True``): with the bars' defaults (decode: GQA, 8 query heads,
2 K/V heads), and for the decode stage also with MHA 8 heads, MQA, MLA and SWA.
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
    from gui.decode_controller import Options
    d = win.decode
    c = win.controller
    c.go(_steps(win, "decode")[0])
    assert d.set_options(**{**dataclasses.asdict(Options()), **options})
    wait_until(lambda: d.model.decode is not None and not d.busy
               and d.model.decode.config == d.config, TRACE_TIMEOUT_MS)


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
