"""Every step stays legible: rendered offscreen at 1366×768 and 1920×1080 (the first window's
layout on that screen, side tabs open: no F11) for the Book preset, an 11-token own text, a 12-token
text at d_out 768 with 12 heads and 64 tokens, each map is checked for what a learner must be able to
read. The maps get ≥ 65 % of the width at 1366; every step of stages 1–8 fits its pane (no
scroll bar) and the steps that compare maps show them in one row (each panel's heads side by side,
or stacked alike, head k beside head k).

For each map: inside its panel (the step scrolls, so the panels only have to be inside the
scrolled area), its colour bar visible (or, sharing one scale, the next panel's in its row), every
row/column label drawn where there are ≤ 32 of them (or, sharing the rows of the panel to its left,
its cells level with that one's labels),
its values printed where it is ≤ 12×12 (thumbnails of many heads excepted: a click opens one large),
and no two texts of the step (tick labels, axis labels, titles, cell values) overlapping.
The images go to ``$STEPPER_LAYOUT_SHOTS`` (default ``screenshots-tmp/layout/``) to be looked at.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from gui.heatmap import MAX_TEXT_CELLS, MAX_TICKS, is_thumbnails
from gui.steps import step_numbers
from tests.gui.fixtures import ROOT, TRACE_TIMEOUT_MS, wait_until

SIZES = [(1366, 768), (1920, 1080)]
TEN = "The old dog chased the quick fox which bit him today"
CASES = {
    "book": None,
    "ten_tokens": dict(embeddings="random", text=TEN, d_in=3, d_out=2, num_heads=2, seed=123),
    "heads12": dict(embeddings="random", text="The old dog chased the quick fox which bit him again today",
                    d_in=768, d_out=768, num_heads=12, seed=123),
    "tokens64": dict(embeddings="random", text=" ".join(f"w{i}" for i in range(64)), d_in=3, d_out=2,
                     num_heads=2, seed=123),
}
COMMON = dict(device="cpu", dtype="float32", batch=1, dropout=0.0, dropout_seed=123, init="linear",
              causal=True, qkv_bias=False)


def shots_dir() -> Path:
    path = Path(os.environ.get("STEPPER_LAYOUT_SHOTS", ROOT / "screenshots-tmp" / "layout"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def layout_window(qapp, tmp_path_factory):
    """One window for every case and size (a window per case would triple the run time)."""
    from gui.app import make_window, start
    settings = QtCore.QSettings(str(tmp_path_factory.mktemp("settings") / "stepper.ini"),
                                QtCore.QSettings.Format.IniFormat)
    controller, win = make_window(settings)
    win.resize(*SIZES[0])
    win.show()
    start(win, controller)
    wait_until(lambda: controller.has_trace and not controller.is_busy())
    yield win
    win.close()


def _load(win, case: str) -> None:
    c = win.controller
    params = CASES[case]
    if params is None:
        if c.mode != "book" or c.model.traces_mode != "book":
            c.use_book()
    else:
        c.restore("custom", {**c.shown_config(), **COMMON, **params})
    deadline = QtCore.QDeadlineTimer(TRACE_TIMEOUT_MS)
    want = "book" if params is None else "custom"
    while not deadline.hasExpired():
        QtWidgets.QApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if c.model.traces_mode == want and not c.is_busy() and c.model.has_trace:
            cfg = c.model.trace.config
            if params is None or all(getattr(cfg, k) == v for k, v in params.items() if hasattr(cfg, k)):
                return
    raise AssertionError(f"{case}: no trace")


def _geometries(win) -> tuple:
    sv = win.step_view
    return (sv.grid_host.size().toTuple(), tuple(p.geometry().getRect() for p in sv.panels))


def _settle(win) -> None:
    """Wait until the step on screen is final: its trace computed (stage 5's is loaded on its first
    visit, on a worker), then the layout requests it posts (new minimum sizes of the panels, then
    of the scrolled area) all handled: two rounds of events in a row change no geometry."""
    c = win.controller
    wait_until(lambda: not c.is_busy() and (c.model.step.stage != "pretrained"
                                            or (not c.pretrained.busy and c.model.pretrained is not None))
               and (c.model.step.stage not in win.external
                    or (not win.external[c.model.step.stage].busy
                        and c.model.external[c.model.step.stage].trace is not None)))
    before, same = _geometries(win), 0
    for _ in range(50):
        QtWidgets.QApplication.processEvents()
        now = _geometries(win)
        same = same + 1 if now == before else 0
        if same >= 2:
            return
        before = now
    raise AssertionError(f"the layout of {c.model.step.id} never settled")


def _rect_in(widget, rect: QtCore.QRectF, target) -> QtCore.QRectF:
    top_left = widget.mapTo(target, QtCore.QPoint(0, 0))
    return rect.translated(top_left.x(), top_left.y())


def _scene_rect(panel, item, rect: QtCore.QRectF | None = None) -> QtCore.QRectF:
    """An item's rect (default: its bounding rect; a text item's without the document margin,
    which is blank) in the panel's viewport pixels."""
    if rect is None:
        rect = item.boundingRect()
        if isinstance(item, QtWidgets.QGraphicsTextItem):
            m = item.document().documentMargin()
            rect = rect.adjusted(m, m, -m, -m)
    r = item.mapRectToScene(rect)
    return QtCore.QRectF(panel.mapFromScene(r).boundingRect())


def _texts(panel) -> list[tuple[QtCore.QRectF, str]]:
    """Every text the panel drew (viewport pixels): tick labels, axis labels, titles, values."""
    out = []
    if panel._title.isVisible() and panel._title.text:
        out.append((_scene_rect(panel, panel._title.item), panel._title.text))
    for m in panel.maps:
        p = m.plot
        if p.titleLabel.isVisible() and p.titleLabel.text:
            out.append((_scene_rect(panel, p.titleLabel.item), p.titleLabel.text))
        for name in ("left", "top"):
            ax = p.getAxis(name)
            if ax.label.isVisible() and ax.labelText:
                out.append((_scene_rect(panel, ax.label), ax.labelText))
            out.extend((_scene_rect(panel, ax, r), t) for r, t in ax.drawn)
        if m.cells is not None and m.cells.isVisible():
            out.extend(m.cells.drawn)
    return out


def _overlaps(rects: list[tuple[QtCore.QRectF, str]]) -> list[tuple[str, str]]:
    if len(rects) < 2:
        return []
    # text boxes are ~1 px generous (font ascent/descent): overlaps under 1.5 px are not visible
    a = np.array([[r.left() + 0.75, r.top() + 0.75, r.right() - 0.75, r.bottom() - 0.75] for r, _t in rects])
    hit = ((a[:, None, 0] < a[None, :, 2]) & (a[None, :, 0] < a[:, None, 2])
           & (a[:, None, 1] < a[None, :, 3]) & (a[None, :, 1] < a[:, None, 3]))
    np.fill_diagonal(hit, False)
    i, j = np.nonzero(np.triu(hit))
    def show(k):
        r, t = rects[k]
        return f"{t!r} ({r.left():.0f}, {r.top():.0f}, {r.width():.0f}×{r.height():.0f})"
    return [(show(x), show(y)) for x, y in zip(i[:5], j[:5])]


def _level(rects: list[QtCore.QRectF]) -> bool:
    """Whether maps (their cells, in their panels' pixels; the panels side by side) share a band of
    the screen: each one's cells overlap every other's vertically."""
    return all(a.top() < b.bottom() and b.top() < a.bottom() for a in rects for b in rects)


def check_step(win, values_expected: bool = True, fits: bool | str = True) -> list[str]:
    """What is wrong with the step on screen (empty: nothing). ``fits``: every map lies wholly in
    the visible area (no scroll bar needed) and a step that compares its maps has them in one row
    ("compare": only on such steps); ``values_expected``: small maps print their values."""
    sv = win.step_view
    host = sv.grid_host
    problems: list[str] = []
    texts: list[tuple[QtCore.QRectF, str]] = []
    viewport = sv.scroll.viewport().size()
    need = host.minimumSizeHint()
    compare = win.model.step.compare
    if (fits is True or (fits == "compare" and compare)) and (need.height() > viewport.height() + 1 or need.width() > viewport.width() + 1):
        problems.append(f"the maps need {need.toTuple()} px, the pane shows {viewport.toTuple()}: a scroll bar")
    if fits and compare:
        # the panels side by side; a panel's heads too (up to 4: more are a grid of thumbnails), or
        # each panel's heads stacked alike, head k of every panel beside the others' head k
        tops = {p.geometry().top() for p in sv.panels}
        stacked = [p for p in sv.panels if len(p.maps) <= 4 and len({m.plot.geometry().top() for m in p.maps}) > 1]
        beside = len(tops) == 1 and len(sv.panels) > 1 and len(stacked) == len(sv.panels) and len(
            {len(p.maps) for p in stacked}) == 1 and all(_level([_scene_rect(p, p.maps[k].image) for p in stacked])
                                                          for k in range(len(stacked[0].maps)))
        if len(tops) > 1 or (stacked and not beside):
            problems.append(f"compared maps are not in one row ({len(tops)} rows of panels, "
                            f"heads stacked: {[len(p.maps) for p in stacked]})")
    for panel, data in zip(sv.panels, sv.datas):
        where = f"{data.key[0]}.{data.key[1]}"
        panel.grab()          # paints the whole panel, scrolled out of view or not (what is read below)
        geo = QtCore.QRectF(panel.geometry())
        if not QtCore.QRectF(host.rect()).adjusted(-0.5, -0.5, 0.5, 0.5).contains(geo):
            problems.append(f"{where}: panel {geo} outside the scrolled area {host.rect()}")
        view = QtCore.QRectF(panel.viewport().rect()).adjusted(-0.5, -0.5, 0.5, 0.5)
        if getattr(panel, "barless", False):
            # its colour bar is the next panel's in the row (or that one's next…): the same scale, shown
            k = sv.panels.index(panel) + 1
            while k + 1 < len(sv.panels) and getattr(sv.panels[k], "barless", False):
                k += 1
            right = sv.panels[min(k, len(sv.panels) - 1)]
            if (right.geometry().top() != panel.geometry().top() or not right.bar.isVisible()
                    or tuple(right.data.levels) != tuple(panel.data.levels) or right.data.kind != panel.data.kind):
                problems.append(f"{where}: no colour bar, and the panel to its right has not its scale")
        else:
            bar = _scene_rect(panel, panel.bar)
            if bar.width() < 8 or not view.contains(bar):
                problems.append(f"{where}: colour bar {bar} not visible in {view}")
        thumbs = is_thumbnails(data)
        for k, m in enumerate(panel.maps):
            rows, cols = m.shape
            cells = _scene_rect(panel, m.image)      # (a big map's image is downsampled)
            if not view.contains(cells):
                problems.append(f"{where}[{k}]: map {cells} cut off by its panel {view}")
            if thumbs:
                continue
            top = m.plot.getAxis("top")
            own = top.mapRectFromParent(top.geometry()).adjusted(-0.5, -0.5, 0.5, 0.5)
            clipped = [t for r, t in top.drawn if top.rotated and not own.contains(r)]
            if clipped:
                problems.append(f"{where}[{k}]: column labels {clipped[:3]} cut by the axis' edge")
            if getattr(panel, "rowless", False):
                # its rows are labelled by the panel to its left: its cells lie level with those
                left = sv.panels[sv.panels.index(panel) - 1]
                mine, theirs = (_rect_in(p.viewport(), _scene_rect(p, image), host)
                                for p, image in ((panel, m.image), (left, left.maps[0].image)))
                if abs(mine.top() - theirs.top()) > 1.5 or abs(mine.height() - theirs.height()) > 1.5:
                    problems.append(f"{where}[{k}]: cells {mine} not level with the row labels' {theirs}")
            for name, labels in (("left", () if getattr(panel, "rowless", False) else data.row_labels), ("top", data.col_labels)):
                drawn = len(m.plot.getAxis(name).drawn)
                if len(labels) <= MAX_TICKS and drawn != len(labels):
                    problems.append(f"{where}[{k}]: {drawn} of {len(labels)} {name} labels drawn")
            if rows <= MAX_TEXT_CELLS and cols <= MAX_TEXT_CELLS and values_expected:
                if not (m.cells is not None and m.cells.isVisible() and len(m.cells.drawn) == rows * cols):
                    problems.append(f"{where}[{k}]: values of the {rows}×{cols} map not drawn")
        texts.extend((_rect_in(panel.viewport(), r, host), t) for r, t in _texts(panel))
    for a, b in _overlaps(texts):
        problems.append(f"texts overlap: {a} and {b}")
    return problems


@pytest.mark.parametrize("case", list(CASES))
def test_every_step_is_legible(layout_window, case):
    win = layout_window
    c = win.controller
    _load(win, case)
    out = shots_dir()
    problems = []
    numbers = step_numbers()
    for w, h in SIZES:
        win.resize(w, h)
        win.reset_layout_for(QtCore.QRect(0, 0, w, h))       # the first window on that screen
        if w == 1366:
            share = win.stack.width() / win.width()
            if share < 0.65:
                problems.append(f"{w}x{h}: the maps get {share:.0%} of the window's width")
        for i, step in enumerate(c.steps):
            c.go(i)
            _settle(win)
            image = win.step_view.grab()      # paints every panel (what check_step reads)
            image.save(str(out / f"{case}_{w}x{h}_{numbers[i]}_{step.id.split('.')[1]}.png"), "PNG")
            # every step, side tabs open (no F11), fits its pane at both sizes: compared maps shrink
            # (their values hidden) rather than stack or scroll, stage 5's wide matrices (768 × 768
            # weights, 384-wide heads) are downsampled to their pane; stage 6 draws its bar's own
            # settings (8 query heads over 2 K/V heads by default; other variants: its own test)
            problems += [f"{w}x{h} {numbers[i]} {step.id}: {p}"
                         for p in check_step(win, values_expected=w >= 1920 and case == "book", fits=True)]
    c.go(0)
    assert not problems, "\n".join(problems[:40]) + f"\n… {len(problems)} problems"


def test_a_row_of_small_maps_is_no_taller_than_its_cells(layout_window):
    """At 1920 × 1080 a step's one row of 12 × 12 maps (1.6, 2.5, 3.5) takes the height its square
    cells need, the room below left empty: each colour bar about as tall as its maps (it was ~3×:
    the panels stretched to the pane's height, the aspect-locked maps could not), the panels level
    at the top."""
    win = layout_window
    c = win.controller
    _load(win, "heads12")
    win.resize(1920, 1080)
    win.reset_layout_for(QtCore.QRect(0, 0, 1920, 1080))
    numbers = step_numbers()
    for number in ("1.6", "2.5", "3.5"):
        c.go(numbers.index(number))
        _settle(win)
        panels = win.step_view.panels
        assert len({p.geometry().top() for p in panels}) == 1, number
        for p in panels:
            images = [_scene_rect(p, m.image) for m in p.maps]
            maps_h = max(r.bottom() for r in images) - min(r.top() for r in images)
            bar_h = p.bar.sceneBoundingRect().height()
            assert maps_h > 150 and bar_h < maps_h + 130, (number, p.data.key, maps_h, bar_h)   # + the column labels
    win.resize(*SIZES[0])
    c.go(0)
