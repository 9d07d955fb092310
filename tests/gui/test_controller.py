"""gui/controller.py: requests to the worker, the latest wins, the book's sections, memory guard, restore;
bad settings handed to the controller (a lesson, saved settings, a script), bad embeddings CSVs,
CUDA where there is none, out of memory: a message and the last trace kept (the ``good`` window)."""
from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np
from PySide6 import QtCore
import pytest

from core import AttentionConfig, build_trace
from core.book import book_config
from tests.core.snapshots import make_input_files
from tests.gui.fixtures import (assert_kept, CSV_ROWS, expected_maps, no_traceback, open_window, panel_data,
                                screen, shown_error, shown_maps, step_index, TRACE_TIMEOUT_MS)


def test_memory_guard_refuses_an_oversized_config_and_keeps_the_last_trace(window, qtbot, monkeypatch):
    import core.memory
    c = window.controller
    before = c.trace
    assert before is not None
    monkeypatch.setattr(core.memory, "available_bytes", lambda device="cpu": 64 * 2**20)   # 64 MiB free
    errors = []
    c.error.connect(lambda field, message: errors.append(message))
    text = " ".join(f"t{i}" for i in range(1500))            # 1500 tokens × 12 heads: gigabytes
    c.set_params(embeddings="random", text=text, d_in=96, d_out=96, num_heads=12)
    qtbot.waitUntil(lambda: bool(errors) and not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    msg = errors[-1]
    assert "needs about" in msg and "reduce the tokens (1500)" in msg and "heads (12)" in msg
    assert c.trace is before                                  # the last trace stays on screen
    assert window.step_view.datas                             # and its heatmaps
    assert msg in window.statusBar().currentMessage()


def test_every_step_uses_the_custom_config(window, qtbot):
    c = window.controller
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        window.params.causal.click()                  # causal off, from the first step's config
    assert c.trace.config.causal is False
    c.go(step_index(c, "causal.approach_b"))
    d = panel_data(window, "masked_scores")
    assert d.maps[0].masked is None and np.isfinite(d.maps[0].values).all()


def test_rapid_changes_the_latest_wins(window, qtbot):
    c = window.controller
    busy = []
    c.busy.connect(busy.append)
    for d_out in range(3, 9):
        c.set_params(d_out=d_out, num_heads=1)
    qtbot.waitUntil(lambda: not c.is_busy() and c.trace.config.d_out == 8, timeout=TRACE_TIMEOUT_MS)
    assert c.params["d_out"] == 8 and busy[0] is True and busy[-1] is False
    assert window.params.d_out.value() == 8


def test_invalid_saved_settings_fall_back_to_the_book(qtbot, settings_file):
    import json
    saved = QtCore.QSettings(settings_file, QtCore.QSettings.Format.IniFormat)
    saved.setValue("config/mode", "custom")
    saved.setValue("config/params", json.dumps({**book_config("v1").to_dict(), "d_out": 3}))
    saved.setValue("config/step", 999)
    saved.sync()
    c, win = open_window(qtbot, settings_file)
    qtbot.waitUntil(lambda: c.mode == "book" and c.trace is not None, timeout=TRACE_TIMEOUT_MS)
    assert c.index == len(c.steps) - 1                    # step 999 clamped to the last
    assert "num_heads" in win.statusBar().currentMessage()
    win.close()


def test_book_delivers_the_current_steps_section_first(qtbot):
    from gui.controller import Controller
    c = Controller()
    try:
        c.go([s.id for s in c.steps].index("multihead.out_proj"))   # section "fused"
        seen = []
        c.model.trace_changed.connect(lambda: seen.append(sorted(c.model.traces)))   # the model: the partial one too
        c.use_book()
        qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
        assert seen[0] == ["fused"]
        assert seen[-1] == sorted(c.sections)
        assert c.trace_for(c.steps[0]) is not None
    finally:
        c.shutdown()


def test_every_step_of_a_custom_config_equals_the_core(window, qtbot):
    """Biases (per head too), a batch of 3 shown at item 1, 3 heads: every map as the core has it."""
    c = window.controller
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(qkv_bias=True, d_out=6, num_heads=3, batch=3, dropout=0.25, seed=7)
    ref = build_trace(c.trace.config)
    window.step_view.batch_box.setValue(1)
    for i, step in enumerate(c.steps):
        c.go(i)
        panels = [p for p in step.panels if p.key in ref]
        shown = shown_maps(window.step_view)
        assert len(shown) == len(panels), step.id
        for panel, images in zip(panels, shown):
            expected = expected_maps(panel, ref, batch_index=1)
            assert len(images) == len(expected), (step.id, panel.key)
            for img, exp in zip(images, expected):
                np.testing.assert_array_equal(img, exp, err_msg=f"{step.id} {panel.key}")


def test_an_invalid_change_drops_the_result_still_in_flight(window, qtbot):
    c = window.controller
    trace = c.trace
    # the worker still delivers the stale result (a partial one, then the final); the controller
    # (connected first) drops both. A QObject slot, so it runs queued on this thread like the
    # controller's (a bare callable would run on the worker thread, racing the second emit).
    class Seen(QtCore.QObject):
        def __init__(self):
            super().__init__()
            self.results = []

        @QtCore.Slot(object)
        def add(self, result):
            self.results.append(result)

    seen = Seen()
    c._worker.partial.connect(seen.add)
    c._worker.done.connect(seen.add)
    try:
        c.set_params(d_out=4, num_heads=2)      # valid, computing…
        c.set_params(num_heads=3)               # …then invalid: its error must stay on screen
        assert window.params.errors["num_heads"].isVisibleTo(window)
        qtbot.waitUntil(lambda: any(not r.partial for r in seen.results), timeout=TRACE_TIMEOUT_MS)
    finally:
        c._worker.partial.disconnect(seen.add)
        c._worker.done.disconnect(seen.add)
    assert not c.is_busy()
    assert c.trace is trace
    assert window.params.errors["num_heads"].isVisibleTo(window)


API_ROWS = [
    ("d_out 3, heads 2", dict(d_out=3, num_heads=2), "num_heads", "must be divisible by num_heads (2)"),
    ("heads 0", dict(num_heads=0), "num_heads", "between 1 and 256, got 0"),
    ("heads -1", dict(num_heads=-1), "num_heads", "between 1 and 256, got -1"),
    ("heads 512", dict(num_heads=512, d_out=512), "num_heads", "between 1 and 256, got 512"),
    ("d_in 0", dict(d_in=0), "d_in", "between 1 and 8192, got 0"),
    ("d_in -3", dict(d_in=-3), "d_in", "between 1 and 8192, got -3"),
    ("d_in 100000", dict(d_in=100000), "d_in", "between 1 and 8192, got 100000"),
    ("d_out 0", dict(d_out=0), "d_out", "between 1 and 8192, got 0"),
    ("d_out -2", dict(d_out=-2), "d_out", "between 1 and 8192, got -2"),
    ("d_out 1e12", dict(d_out=10**12), "d_out", "between 1 and 8192, got 1000000000000"),
    ("d_out 2.5", dict(d_out=2.5), "d_out", "must be a whole number, got 2.5"),
    ("batch 0", dict(batch=0), "batch", "between 1 and 64, got 0"),
    ("batch 100000", dict(batch=100000), "batch", "between 1 and 64, got 100000"),
    ("dropout nan", dict(dropout=math.nan), "dropout", "must be in [0, 1)"),
    ("dropout inf", dict(dropout=math.inf), "dropout", "must be in [0, 1)"),
    ("dropout 1.0", dict(dropout=1.0), "dropout", "must be in [0, 1)"),
    ("dropout 1.5", dict(dropout=1.5), "dropout", "must be in [0, 1)"),
    ("dropout -0.1", dict(dropout=-0.1), "dropout", "must be in [0, 1)"),
    ("dropout 'half'", dict(dropout="half"), "dropout", "must be a number in [0, 1)"),
    ("seed -1", dict(seed=-1), "seed", "between 0 and 9223372036854775807, got -1"),
    ("seed 2**70", dict(seed=2**70), "seed", "between 0 and 9223372036854775807"),
    ("dropout_seed -5", dict(dropout_seed=-5), "dropout_seed", "got -5"),
    ("text empty", dict(text=""), "text", "is empty; type at least one word"),
    ("text whitespace", dict(text=" \n\t "), "text", "is empty; type at least one word"),
    ("text over 100000 characters", dict(text="a" * 100_001), "text",
     "is 100001 characters long; the limit is 100000"),
    ("text over 4096 tokens", dict(text="w " * 4097), "text", "has 4097 tokens; the limit is 4096"),
    # Qt drops lone surrogates from what is typed; a lesson, saved settings or a script can hand them over
    ("text not UTF-8", dict(text="caf\udce9 au lait"), "text", "contains the byte 0xE9 (character 4), which is not UTF-8"),
    ("text lone surrogate", dict(text="a \ud800"), "text", "contains a lone surrogate U+D800"),
    ("seed 5000 digits", dict(seed=10**4999), "seed", "got a number of about 5000 digits"),
    ("book embeddings, own text", dict(embeddings="book", text="hello there", d_in=3), "embeddings",
     "'book' has vectors only for the book's sentence"),
    ("init xavier", dict(init="xavier"), "init", "must be one of rand, linear; got 'xavier'"),
    ("device tpu", dict(device="tpu"), "device", "must be one of auto, cpu, cuda; got 'tpu'"),
    ("dtype float16", dict(dtype="float16"), "dtype", "must be one of float32, float64; got 'float16'"),
    ("unknown field", dict(colour="red"), "", "colour"),
]


HUGE = dict(embeddings="random", text=" ".join(["w"] * 4096), d_in=8192, d_out=8192, num_heads=256, batch=64)


def _cpu_alloc_failure():
    return RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                        "memory: you tried to allocate 140737488355328 bytes. Error code 12")


@pytest.mark.parametrize("changes, field, words", [r[1:] for r in API_ROWS], ids=[r[0] for r in API_ROWS])
def test_bad_setting_through_the_controller(good, qtbot, capfd, changes, field, words):
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS) as blocker:
        c.set_params(**changes)
    assert blocker.args[0] == field
    assert words in shown_error(good, field)
    assert words in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    # going back to good settings brings a new trace and clears the message
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.restore("custom", before.trace.config.to_dict())
    assert not good.params.general_error.isVisibleTo(good)
    assert not any(label.isVisibleTo(good) for label in good.params.errors.values())
    no_traceback(capfd)


@pytest.mark.parametrize("name, field, words", CSV_ROWS, ids=[r[0] for r in CSV_ROWS])
def test_bad_embeddings_csv_as_the_embeddings_source(good, qtbot, capfd, tmp_path, name, field, words):
    """A CSV path as the embeddings setting (saved settings, a lesson, a script)."""
    files = make_input_files(tmp_path)
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS) as blocker:
        c.set_params(embeddings=files[name], **({} if name == "width2" else {"d_in": 2}))
    assert blocker.args[0] == field
    assert words in shown_error(good, field)
    assert words in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


def test_cuda_asked_for_where_there_is_none(good, qtbot, capfd, monkeypatch):
    import core.device
    monkeypatch.setattr(core.device, "cuda_available", lambda: False)
    c = good.controller
    with qtbot.waitSignal(c.notice, timeout=TRACE_TIMEOUT_MS) as note:
        c.set_params(device="cuda")
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert note.args[0] == "CUDA was requested but no CUDA GPU is available; computed on the CPU"
    assert "no CUDA GPU" in good.statusBar().currentMessage()
    assert c.trace.device == "cpu" and c.trace.config.device == "cuda"
    assert good.params.device.currentData() == "cpu"
    assert "CPU" in good.status_info.text()
    ref = build_trace(c.trace.config.replace(device="cpu"))
    for panel, imgs in zip([p for p in c.step.panels if p.key in ref], shown_maps(good.step_view)):
        for img, exp in zip(imgs, expected_maps(panel, ref)):
            np.testing.assert_array_equal(img, exp)
    no_traceback(capfd)


def test_a_trace_too_big_for_memory_is_refused_before_allocating(good, qtbot, capfd, monkeypatch):
    import core.memory
    import core.trace
    calls = []
    monkeypatch.setattr(core.trace, "build_trace", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(core.memory, "available_bytes", lambda device="cpu": 16 * 2**30)
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS) as blocker:
        c.set_params(**HUGE)
    assert calls == []                                 # refused before anything was computed
    assert blocker.args[0] == ""
    msg = shown_error(good, "")
    assert "this trace needs about" in msg and "budget is 8.0 GiB" in msg and "reduce" in msg
    assert "needs about" in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


@pytest.mark.parametrize("error, words", [
    (MemoryError, "out of memory while computing the trace"),
    (_cpu_alloc_failure(), "out of memory while computing the trace"),
    (None, "the GPU ran out of memory"),                    # torch.OutOfMemoryError
], ids=["MemoryError", "cpu-allocator", "torch.OutOfMemoryError"])
def test_out_of_memory_anyway_is_a_message(good, qtbot, capfd, monkeypatch, error, words):
    import torch

    import core.trace
    if error is None:
        error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def fail(*_a, **_k):
        raise error

    monkeypatch.setattr(core.trace, "build_trace", fail)
    monkeypatch.setattr(core.trace, "build_trace_in_steps", fail)   # the custom path: visible stage first
    c, before = good.controller, screen(good)
    with qtbot.waitSignal(c.error, timeout=TRACE_TIMEOUT_MS):
        c.set_params(seed=6)                               # valid: the worker tries, allocation fails
    assert words in shown_error(good, "")
    assert words in good.statusBar().currentMessage()
    assert_kept(good, qtbot, before)
    no_traceback(capfd)


def test_a_change_made_on_a_stage_5_step_starts_from_the_chapters_settings(window, qtbot):
    """Regression (the soak, seed 7): stage 5 has no book section, so a change made there in the
    Book preset started from nothing ({"batch": 2}: a request without d_in, text, …)."""
    c = window.controller
    c.use_book()
    qtbot.waitUntil(lambda: not c.is_busy() and c.traces_mode == "book", timeout=TRACE_TIMEOUT_MS)
    last_chapter = max(i for i, s in enumerate(c.steps) if s.stage not in ("pretrained", "decode", "tiled", "rope"))
    c.go(next(i for i, s in enumerate(c.steps) if s.stage == "pretrained"))
    expected = dict(c.sections[c.steps[last_chapter].section], batch=2)
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(batch=2)
    assert c.params == expected
    assert c.model.trace_for(c.steps[last_chapter]).config == AttentionConfig(**expected)


def test_a_refused_change_after_a_drawn_visible_stage_shows_the_last_complete_trace(window, qtbot):
    """Regression (the soak, seed 11): a valid change's visible stage was drawn, then a refused
    change dropped the rest of it, and the window kept the partial trace for good (every other
    stage's step said "Computing…"). Now the last complete trace comes back."""
    c = window.controller
    c.go(step_index(c, "trainable.weights"))
    before = c.model.traces
    drawn_partial = []
    c.model.shown_changed.connect(lambda: drawn_partial.append(len(c.model.traces["custom"].stages) < 4)
                                  if "custom" in c.model.traces else None)
    held = []
    for signal in (c._worker.partial, c._worker.done):                     # results held back
        signal.disconnect(c._on_done)
        signal.connect(held.append)
    try:
        c.set_params(batch=3)                                  # valid: computing…
        qtbot.waitUntil(lambda: any(r.partial for r in held), timeout=TRACE_TIMEOUT_MS)
        c._on_done(next(r for r in held if r.partial))         # its visible stage drawn
        assert drawn_partial and drawn_partial[-1] and c.model.trace.config.batch == 3
        c.set_params(num_heads=7)                              # refused: the rest of batch 3 is dropped
        assert window.params.errors["num_heads"].isVisibleTo(window)
    finally:
        for signal in (c._worker.partial, c._worker.done):
            signal.disconnect(held.append)
            signal.connect(c._on_done)
    assert c.model.traces is before and not c.is_busy()
    for i, step in enumerate(c.steps):
        if step.stage not in ("pretrained", "decode", "tiled", "rope"):      # stages 5…8: their own traces
            c.go(i)
            assert c.model.trace is not None, step.id         # no step left "Computing…"


def test_a_change_draws_the_visible_stage_first_then_the_full_trace(window, qtbot):
    """After a change only the stage on screen (with what it reads) is computed before the first
    paint; the others follow, equal bit for bit to build_trace (the same code path runs)."""
    c = window.controller
    c.go(step_index(c, "multihead.weights"))
    seen = []                                  # (stages of the trace, what the step view draws) per event

    def on_shown():                            # after the step view's own slot: what it now draws
        t = c.model.traces.get("custom")
        drawn = [d.key for d in window.step_view.datas]
        seen.append((tuple(t.stages) if t is not None else (), c.model.trace is not None,
                     bool(drawn) and all(k[0] == "multihead" for k in drawn)
                     and all(m.values.shape == (5, 5) for d in window.step_view.datas for m in d.maps[:1])))
    c.model.shown_changed.connect(on_shown)
    try:
        with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
            c.set_params(num_heads=3, d_out=6, d_in=3, text="a b c d e", embeddings="random")   # 5 tokens: not the old 6
    finally:
        c.model.shown_changed.disconnect(on_shown)
    full = build_trace(c.trace.config)
    assert [s[0] for s in seen] == [("multihead",), tuple(full.stages)]     # it projects its Q, K, V itself
    assert seen[0][1] and seen[0][2]           # the visible step is drawn from the partial trace
    for item in full:
        assert np.array_equal(item.numpy(), c.trace[item.key].numpy(), equal_nan=True), item.key
    # a step of a stage not yet computed shows "Computing…" (no stale numbers), then its maps
    c.model.set_traces("custom", {"custom": build_trace(c.trace.config, only=("trainable", "multihead"))})
    c.go(step_index(c, "causal.mask"))
    assert c.model.trace is None and c.model.shown == () and window.step_view.formula.text() == "Computing…"
    c.model.set_traces("custom", {"custom": full})
    assert c.model.shown and window.step_view.datas


def test_the_side_panes_wait_for_the_full_trace_and_a_step_change_fills_them(window, qtbot):
    """A partial trace (the visible stage first) redraws the maps; the explanation and code panes
    keep what they showed until the full trace is in, unless the learner moves to another step."""
    c = window.controller
    c.go(step_index(c, "multihead.weights"))
    old = build_trace(AttentionConfig(embeddings="random", text="a b c d", d_in=4, d_out=4, num_heads=2, seed=5))
    c.model.set_traces("custom", {"custom": old})
    before = (window.explanation.toPlainText(), window.code_panel.code.toPlainText())
    assert "seed 5" in before[0]
    cfg = AttentionConfig(embeddings="random", text="a b c d", d_in=4, d_out=4, num_heads=2, seed=9)
    partial = build_trace(cfg, only=("multihead",))
    c.model.set_traces("custom", {"custom": partial})        # a first part: the model sees the stages missing
    assert c.model.ready_stages == {"multihead"} and not c.model.ready()
    assert np.array_equal(window.step_view.datas[0].maps[0].values, partial["multihead", "attn_weights"].numpy()[0])
    assert (window.explanation.toPlainText(), window.code_panel.code.toPlainText()) == before
    c.go(step_index(c, "multihead.scores"))                  # another step of the stage on screen
    assert "seed 9" in window.explanation.toPlainText()
    assert c.model.ready() and window.code_panel.code.toPlainText() != before[1]
    c.go(step_index(c, "multihead.weights"))
    c.model.set_traces("custom", {"custom": old})
    c.model.set_traces("custom", {"custom": build_trace(cfg)})   # the full trace: both panes follow
    assert "seed 9" in window.explanation.toPlainText()
    assert window.code_panel.code.toPlainText() != before[1]


def test_a_newer_change_stops_the_background_stages(window, qtbot):
    from gui.worker import Request, compute
    req = Request(1, "custom", {**window.controller.shown_config(), "num_heads": 1}, stages=("simplified",))
    delivered = []
    out = compute(req, partial=delivered.append, cancelled=lambda: True)
    assert [tuple(r.traces["custom"].stages) for r in delivered] == [("simplified",)]
    assert tuple(out.traces["custom"].stages) == ("simplified",)      # the rest was never computed


def test_the_worker_prepares_the_step_on_screen(window, qtbot, monkeypatch):
    """The colour ranges and undefined-value notes of the step on screen are found on the worker
    and kept in the display cache: drawing the step then finds them (no second pass over the
    numbers on the UI thread), and they equal a fresh computation."""
    from gui import matrices
    from gui.display_cache import DISPLAY
    from gui.worker import Request, compute
    c = window.controller
    step = c.steps[step_index(c, "multihead.weights")]
    req = Request(1, "custom", {**c.shown_config(), "num_heads": 2, "d_out": 4}, stages=("multihead",),
                  panels=tuple(step.panels))
    delivered = []
    compute(req, partial=delivered.append)
    trace = delivered[0].traces["custom"]
    ranges = []
    monkeypatch.setattr(matrices, "_value_range", lambda maps: ranges.append(maps) or (0.0, 0.0))
    prepared = [matrices.resolve_panel(p, trace) for p in step.panels]
    assert ranges == [] and all(d is not None for d in prepared)          # found, not computed again
    monkeypatch.undo()
    fresh = build_trace(trace.config, only=("multihead",))
    for p, d in zip(step.panels, prepared):
        assert d.levels == matrices.resolve_panel(p, fresh).levels
        assert DISPLAY.peek(trace[p.key], ("notes",)) is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread nice values are Linux's")
def test_the_trace_worker_and_its_torch_threads_yield_to_the_window(window):
    """The trace worker runs at a lower priority than the window's thread (it gives way while
    the window paints), and so do the threads torch starts from it; the window's is unchanged."""
    from gui.tasks import BACKGROUND_NICE

    def nice(tid) -> int:
        with open(f"/proc/self/task/{tid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[16])

    def named(name) -> list[str]:
        out = []
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as fh:
                    if fh.read().strip() == name:
                        out.append(tid)
            except OSError:
                pass
        return out
    assert window.controller.has_trace                        # torch has computed on the worker
    main = nice(threading.get_native_id())
    workers = named("TraceWorker")
    assert workers and all(nice(t) == min(19, main + BACKGROUND_NICE) for t in workers)
    assert nice(threading.get_native_id()) == main
