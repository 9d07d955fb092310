"""Stage 6 (decode with a KV cache) in the window: the maps of its steps are core.decode's trace
for the same settings (values, not only shapes), computed off the UI thread; the position
pointer; GQA's query heads named by their K/V head; a bad combination keeps the last good
trace; the inspector and code panel; Export all writes the decode trace; the KV-cache meter
shows the book's figures. References: core.decode.build_decode run here, independently."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from PySide6 import QtWidgets

from core.decode import build_decode, step_stage
from core.decode_config import DecodeConfig
from tests.gui.fixtures import step_index, TRACE_TIMEOUT_MS


@pytest.fixture
def win(window):
    """A fresh window per test (conftest's ``window``), named as these tests read it."""
    return window


def ctl(win):
    return win.external["decode"]            # the decode stage's controller (gui.external_stage)


def bar(win):
    return win.external_bars["decode"]


def state(win):
    return win.model.external["decode"]      # its trace, pointer (the position) and status


def wait_decode(qtbot, win) -> None:
    qtbot.waitUntil(lambda: state(win).trace is not None and not ctl(win).busy, timeout=TRACE_TIMEOUT_MS)


def shown(win, name: str, stage: str = "decode"):
    return next(d for d in win.model.shown if d.key == (stage, name))


def reference(**options) -> DecodeConfig:
    """The DecodeConfig the bar's options stand for, written out here (not read from the GUI)."""
    variant = options.get("variant", "gqa")
    return DecodeConfig(variant=variant, d_out=options.get("d_out", 16), num_heads=options.get("num_heads", 8),
                        num_kv_groups=options.get("kv_groups", 2) if variant in ("gqa", "swa") else None,
                        latent_dim=options.get("latent", 8) if variant == "mla" else None,
                        sliding_window_size=options.get("window", 3) if variant == "swa" else None,
                        new_tokens=options.get("new_tokens", 4), device="cpu")


def set_and_wait(qtbot, win, **options) -> None:
    assert ctl(win).set_options(**options)
    wait_decode(qtbot, win)
    qtbot.waitUntil(lambda: state(win).trace.config == ctl(win).config, timeout=TRACE_TIMEOUT_MS)


def maps(data) -> list[np.ndarray]:
    return [np.asarray(m.values) for m in data.maps]


def test_decode_is_computed_off_the_ui_thread_on_the_first_visit_only(qtbot, win, monkeypatch):
    import core.decode
    assert not ctl(win).started and state(win).trace is None
    threads = []
    real = core.decode.build_decode

    def recording(cfg, *a, **k):
        threads.append(threading.current_thread())
        return real(cfg, *a, **k)

    monkeypatch.setattr(core.decode, "build_decode", recording)
    win.model.go(step_index(win.model, "decode.query"))
    assert bar(win).isVisible() and not win.pretrained_bar.isVisible()
    wait_decode(qtbot, win)
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert win.model.step.stage == "decode" and win.model.shown


def test_decode_status_texts_come_from_the_generic_external_state(qtbot, win):
    """Stage 6 is one entry of gui.external_model.STAGES: while its trace computes, the step's
    formula, the explanation and the status line say so; then the status line sums the trace up."""
    from gui.external_model import STAGES
    assert "decode" in STAGES and not hasattr(win, "decode") and not hasattr(win.model, "decode_status")
    win.model.go(step_index(win.model, "decode.query"))           # (the worker's answer needs the event loop)
    waiting = "Computing the decode trace…"
    assert state(win).trace is None and state(win).status == waiting
    assert win.step_view.formula.text() == waiting and waiting in win.explanation.toPlainText()
    assert win.status_info.text() == waiting
    wait_decode(qtbot, win)
    trace = state(win).trace
    worst = float(trace["decode_summary", "max_abs_diff"].numpy().max())
    assert win.status_info.text() == state(win).status == (
        f"decode gqa · 6 prompt + 4 new tokens · cached = uncached to {worst:.1e} · {trace.compute_ms:.0f} ms")


@pytest.mark.parametrize("options", [dict(variant="mha", num_heads=4, d_out=8),
                                     dict(variant="gqa", num_heads=8, d_out=16, kv_groups=2),
                                     dict(variant="swa", num_heads=4, d_out=8, kv_groups=2, window=3)],
                         ids=["mha", "gqa", "swa"])
def test_decode_steps_show_the_core_trace_at_the_pointer(qtbot, win, options):
    win.model.go(step_index(win.model, "decode.query"))
    wait_decode(qtbot, win)
    set_and_wait(qtbot, win, **options)
    ref = build_decode(reference(**options))
    T = len(ref.tokens)
    for position in (ref.positions[0], ref.positions[-1]):
        bar(win).pointer.setValue(position)           # the position pointer
        assert state(win).pointer == position
        S = step_stage(position, T)
        want = {n: ref[S, n].numpy() for n in ref.stages[S]}
        win.model.go(step_index(win.model, "decode.query"))
        q = shown(win, "queries")
        assert len(q.maps) == options["num_heads"]
        for h, m in enumerate(maps(q)):
            np.testing.assert_allclose(m, want["queries"][h], rtol=0, atol=1e-6)
        assert float(maps(shown(win, "position"))[0][0, 0]) == position
        win.model.go(step_index(win.model, "decode.cache"))
        if options["variant"] == "swa":
            ring = maps(shown(win, "ring_k"))
            assert len(ring) == options["kv_groups"]
            for g, m in enumerate(ring):
                np.testing.assert_allclose(m, want["ring_k"][g], rtol=0, atol=1e-6)
            np.testing.assert_array_equal(maps(shown(win, "ring_positions"))[0][0], want["ring_positions"])
        else:
            ck = maps(shown(win, "cache_k"))
            assert len(ck) == (options.get("kv_groups") if options["variant"] == "gqa" else options["num_heads"])
            for g, m in enumerate(ck):
                assert m.shape[0] == position + 1                  # the cache grew: one row per token so far
                np.testing.assert_allclose(m, want["cache_k"][g], rtol=0, atol=1e-6)
        win.model.go(step_index(win.model, "decode.scores"))
        for h, m in enumerate(maps(shown(win, "attn_scores"))):
            assert m.shape[0] == 1                                 # one new row of scores
            np.testing.assert_allclose(m, want["attn_scores"][h], rtol=0, atol=1e-5)
        win.model.go(step_index(win.model, "decode.mask"))
        np.testing.assert_array_equal(maps(shown(win, "mask"))[0], want["mask"])
        if options["variant"] == "swa":
            band = maps(shown(win, "band_row"))[0][0]
            expected = [1.0 if 0 <= position - j < options["window"] else 0.0 for j in range(position + 1)]
            np.testing.assert_array_equal(band, expected)         # the band, written out here
        win.model.go(step_index(win.model, "decode.softmax"))
        for h, m in enumerate(maps(shown(win, "attn_weights"))):
            np.testing.assert_allclose(m, want["attn_weights"][h], rtol=0, atol=1e-6)
            assert abs(float(m.sum()) - 1.0) < 1e-5
        win.model.go(step_index(win.model, "decode.context"))
        np.testing.assert_allclose(maps(shown(win, "context_vecs"))[0], want["context_vecs"], rtol=0, atol=1e-6)
        win.model.go(step_index(win.model, "decode.check"))
        diff = next(d for d in win.model.shown if d.extra.get("max_abs_diff") is not None)
        np.testing.assert_allclose(maps(diff)[0], want["context_vecs"] - want["recomputed"], rtol=0, atol=1e-7)
        check = float(want["check"][0])
        assert check <= 1e-5 and abs(diff.extra["max_abs_diff"] - check) <= 1e-9
        assert f"{check:.1e}" in diff.title and f"{check:.2e}" in win.explanation.toPlainText()
        assert f"At position {position} " in win.explanation.toPlainText()


def _drawn_title_colours(win, name: str) -> list[str]:
    """The colours the step view drew the maps' titles of matrix ``name`` in (pyqtgraph's options)."""
    k = next(i for i, d in enumerate(win.model.shown) if d.key[1] == name)
    return [str(m.plot.titleLabel.opts.get("color")) for m in win.step_view.panels[k].maps]


def test_gqa_query_heads_are_named_and_coloured_by_the_k_v_head_they_share(qtbot, win):
    win.model.go(step_index(win.model, "decode.gqa"))
    wait_decode(qtbot, win)
    set_and_wait(qtbot, win, variant="gqa", num_heads=8, d_out=16, kv_groups=2)
    keys = shown(win, "keys")
    assert [m.title for m in keys.maps] == [f"h{h} ← kv{h // 4}" for h in range(8)]
    cache = shown(win, "cache_k")
    assert [m.title for m in cache.maps] == ["kv0", "kv1"]
    for h, m in enumerate(keys.maps):                         # repeat_interleave: the shared head's rows
        np.testing.assert_array_equal(m.values, cache.maps[h // 4].values)
    # one colour per K/V head: its query heads' titles and its own title; the two groups differ
    colours = [m.title_colour for m in keys.maps]
    assert colours[0] == colours[3] == cache.maps[0].title_colour and colours[4] == colours[7] == cache.maps[1].title_colour
    assert len(set(colours[:4])) == len(set(colours[4:])) == 1 and colours[0] != colours[4]
    assert _drawn_title_colours(win, "keys") == colours and _drawn_title_colours(win, "cache_k") == colours[::4]
    # the same colours on every decode step that draws the query heads
    for step_id, name in (("decode.scores", "attn_scores"), ("decode.softmax", "attn_weights"),
                          ("decode.query", "queries")):
        win.model.go(step_index(win.model, step_id))
        assert [m.title_colour for m in shown(win, name).maps] == colours, step_id
        assert _drawn_title_colours(win, name) == colours, step_id
    # the legend line under the bar, in the same colours
    assert bar(win).legend.isVisible()
    assert bar(win).legend_items() == [(colours[0], "query heads 0–3 share K/V head 0"),
                                             (colours[4], "query heads 4–7 share K/V head 1")]
    assert "query heads 0–3 share K/V head 0" in bar(win).legend.text() and colours[4] in bar(win).legend.text()
    # 8 heads over 4 K/V heads: four colours, two heads each; MHA: no groups, no colours, no legend
    set_and_wait(qtbot, win, kv_groups=4)
    colours = [m.title_colour for m in shown(win, "queries").maps]
    assert [colours[h] == colours[h ^ 1] for h in range(8)] == [True] * 8 and len(set(colours)) == 4
    assert len(bar(win).legend_items()) == 4 and bar(win).legend_items()[3][1] == "query heads 6–7 share K/V head 3"
    set_and_wait(qtbot, win, variant="mha")
    assert {m.title_colour for m in shown(win, "queries").maps} == {""}
    assert [m.title for m in shown(win, "queries").maps] == [f"head {h}" for h in range(8)]
    assert not bar(win).legend.isVisible() and bar(win).legend_items() == []


def test_mla_step_shows_the_latent_cache_and_its_projections(qtbot, win):
    win.model.go(step_index(win.model, "decode.mla"))
    wait_decode(qtbot, win)
    set_and_wait(qtbot, win, variant="mla", num_heads=4, d_out=8, latent=3)
    ref = build_decode(reference(variant="mla", num_heads=4, d_out=8, latent=3))
    p = state(win).pointer
    c = maps(shown(win, "cache_c_kv"))[0]
    assert c.shape == (p + 1, 3)
    np.testing.assert_allclose(c, ref[step_stage(p, len(ref.tokens)), "cache_c_kv"].numpy(), rtol=0, atol=1e-6)
    assert {d.key[1] for d in win.model.shown} == {"W_DKV", "latent_new", "cache_c_kv"}
    np.testing.assert_allclose(maps(shown(win, "latent_new"))[0], c[-1:], rtol=0, atol=0)   # the row appended
    win.model.go(step_index(win.model, "decode.mla_up"))
    W_UK = maps(shown(win, "W_UK", "decode_weights"))[0]
    np.testing.assert_array_equal(W_UK, ref["decode_weights", "W_UK"].numpy())
    assert {d.key[1] for d in win.model.shown} == {"W_UK", "W_UV"}
    win.model.go(step_index(win.model, "decode.scores"))
    keys_ref = torch.tensor(c, dtype=torch.float64) @ torch.tensor(W_UK, dtype=torch.float64)   # (T, d_out), no bias
    for h, m in enumerate(maps(shown(win, "keys"))):                # the up-projection, split into heads of 2
        np.testing.assert_allclose(m, keys_ref[:, 2 * h:2 * h + 2].numpy(), rtol=0, atol=1e-6)


def test_a_bad_combination_is_one_message_and_the_last_good_trace_stays(qtbot, win):
    win.model.go(step_index(win.model, "decode.query"))
    wait_decode(qtbot, win)
    before, options = state(win).trace, ctl(win).options
    messages = []
    ctl(win).error.connect(messages.append)
    win.statusBar().clearMessage()
    bar(win).spins["kv_groups"].setValue(3)              # 8 heads over 3 K/V heads
    qtbot.wait(50)
    assert len(messages) == 1 and "divisible" in messages[0], messages
    assert win.statusBar().currentMessage() == messages[0]
    assert state(win).trace is before and ctl(win).options == options and not ctl(win).busy
    assert bar(win).spins["kv_groups"].value() == options.kv_groups     # the bar shows what is in force
    assert win.model.shown


def test_inspector_and_code_panel_on_a_decode_step(qtbot, win):
    win.model.go(step_index(win.model, "decode.scores"))
    wait_decode(qtbot, win)
    k = next(i for i, d in enumerate(win.model.shown) if d.key == ("decode", "attn_scores"))
    win.model.click(k, 1, 0, 2)
    e = win.inspector.explanation
    assert e is not None and e.name == "attn_scores" and e.kind == "dot"
    assert abs(e.recomputed - e.value) <= 1e-5
    assert "queries @ keys.transpose" in win.code_panel.highlighted_line()


def test_export_all_on_a_decode_step_writes_the_decode_trace(qtbot, win, tmp_path, monkeypatch):
    win.model.go(step_index(win.model, "decode.check"))
    wait_decode(qtbot, win)
    out = tmp_path / "decode_export"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    with qtbot.waitSignal(win.export_finished, timeout=TRACE_TIMEOUT_MS):
        win.actions["export_all"].trigger()
    manifest = json.loads((out / "manifest.json").read_text())
    trace = state(win).trace
    folders = {p.name for p in out.iterdir() if p.is_dir()}
    assert folders >= {"decode_weights", "decode_prefill", "decode_summary"} | {
        step_stage(p, len(trace.tokens)) for p in trace.positions}
    assert "decode" not in folders                            # the pointer's alias is not written twice
    assert manifest["config"]["variant"] == trace.config.variant == "gqa"
    assert manifest["config"]["num_kv_groups"] == 2 and manifest["tokens"] == list(trace.tokens)
    last = step_stage(trace.positions[-1], len(trace.tokens))
    entry = next(t for t in manifest["tensors"] if t["stage"] == last and t["name"] == "cache_k" and t["index"] == [1])
    assert entry["file"] == f"{last}/cache_k_g1.csv"
    written = np.loadtxt(out / entry["file"], delimiter=",", skiprows=1, usecols=range(1, entry["shape"][1] + 1))
    np.testing.assert_allclose(written, trace[last, "cache_k"].numpy()[1], rtol=0, atol=1e-7)


def test_kv_meter_shows_the_book_figures(qtbot, win):
    win.actions["kv_meter"].trigger()
    meter = win.kv_meter
    assert meter.isVisible()
    rows = {r[0]: r for r in meter.table_text()}
    assert rows["mha"][4] == "17.18 GB" and rows["gqa"][4] == "4.29 GB"
    assert rows["gqa"][5] == "4.00x"
    assert len(meter.plot.listDataItems()) == len(rows)
    meter.spins["num_kv_groups"].setValue(5)                  # 32 heads over 5 K/V heads
    assert "divisible" in meter.message.text()
    assert {r[0]: r for r in meter.table_text()}["mha"][4] == "17.18 GB"


@pytest.mark.parametrize("variant", ["mha", "mqa", "mla", "swa"])
def test_every_decode_step_draws_and_its_texts_fill_in(qtbot, win, variant):
    win.model.go(step_index(win.model, "decode.prefill"))
    wait_decode(qtbot, win)
    set_and_wait(qtbot, win, variant=variant, num_heads=4, d_out=8, kv_groups=2, latent=3, window=2)
    decode_steps = [i for i, s in enumerate(win.model.steps) if s.stage == "decode"]
    assert len(decode_steps) >= 10
    for i in decode_steps:
        win.model.go(i)
        step = win.model.step
        assert win.model.draw_error is None, (step.id, win.model.draw_error)
        text = win.explanation.toPlainText()
        assert "{{" not in text and "}}" not in text, (step.id, text)
        assert "{{" not in win.step_view.formula.text() and "{{" not in win.step_view.title.text()
        assert win.model.shown, step.id                # every step shows something for every variant


def test_the_prompt_can_be_the_main_text_field(qtbot, win):
    c = win.controller
    text = "The old dog chased the fox"
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(text=text, embeddings="random", d_in=4, seed=7)
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
    assert text[:20] in bar(win).prompt.itemText(1)
    win.model.go(step_index(win.model, "decode.query"))
    wait_decode(qtbot, win)
    assert state(win).trace.tokens[:6] == tuple("Your journey starts with one step".split())   # the book's
    bar(win).prompt.setCurrentIndex(1)
    qtbot.waitUntil(lambda: state(win).trace.config.text == text and not ctl(win).busy, timeout=TRACE_TIMEOUT_MS)
    trace = state(win).trace
    assert trace.tokens[:6] == tuple(text.split()) and trace.prompt_tokens == 6
    ref = build_decode(DecodeConfig(variant="gqa", d_out=16, num_heads=8, num_kv_groups=2, new_tokens=4, text=text,
                                    embeddings="random", d_in=4, seed=7, device="cpu"))
    np.testing.assert_allclose(maps(shown(win, "x_new"))[0], ref[step_stage(6, 10), "x_new"].numpy(), rtol=0, atol=0)
    for h, m in enumerate(maps(shown(win, "queries"))):
        np.testing.assert_allclose(m, ref[step_stage(6, 10), "queries"].numpy()[h], rtol=0, atol=1e-6)


def test_the_prefill_text_counts_the_prompt_not_the_pointer(qtbot, win):
    win.model.go(step_index(win.model, "decode.prefill"))
    wait_decode(qtbot, win)
    set_and_wait(qtbot, win, variant="gqa", num_heads=8, d_out=16, kv_groups=2, new_tokens=4)
    bar(win).pointer.setValue(9)
    assert "2 K/V heads × 6 rows × hd 2" in win.explanation.toPlainText()      # the 6 prompt tokens
    ref = build_decode(reference(variant="gqa", num_heads=8, d_out=16, kv_groups=2, new_tokens=4))
    for h, m in enumerate(maps(shown(win, "attn_weights", "decode_prefill"))):
        np.testing.assert_allclose(m, ref["decode_prefill", "attn_weights"].numpy()[h], rtol=0, atol=0)


def test_the_inspector_explains_a_k_v_head_map_and_a_weight(qtbot, win):
    win.model.go(step_index(win.model, "decode.cache"))
    wait_decode(qtbot, win)
    set_and_wait(qtbot, win, variant="gqa", num_heads=8, d_out=16, kv_groups=2)
    k = next(i for i, d in enumerate(win.model.shown) if d.key == ("decode", "cache_k"))
    win.model.click(k, 1, 3, 1)                                  # K/V head 1, the token at position 3, d1
    e = win.inspector.explanation
    assert e.name == "cache_k" and e.index == (1, 3, 1) and e.kind == "copy"
    assert e.value == float(state(win).trace.step(state(win).pointer)["cache_k"].numpy()[1, 3, 1])
    win.model.go(step_index(win.model, "decode.mla_up"))
    set_and_wait(qtbot, win, variant="mla", num_heads=4, d_out=8, latent=3)
    win.model.click(0, 0, 2, 5)
    e = win.inspector.explanation
    assert (e.stage, e.name, e.kind) == ("decode_weights", "W_UK", "given")


def test_a_chapter_cell_gone_on_a_decode_step_says_why_there_and_comes_back_on_its_step(qtbot, win):
    """Clicked on a chapter step, the cell is not explained on stage 6: the inspector says the step
    draws its own trace (not that "stage 5 runs the real model", nor "another Book section"), on
    every stage-6 step; back on the step it was clicked on, it is explained again."""
    from tests.gui.fixtures import click_cell, go_to
    from tests.gui.fixtures import shown as shown_panel
    go_to(win, qtbot, "trainable.weights_softmax")
    panel, _data = shown_panel(win, "trainable", "attn_weights")
    click_cell(qtbot, panel, 1, 0)
    insp = win.inspector
    qtbot.waitUntil(lambda: insp.cell is not None)
    value = insp.explanation.value
    for k in (0, 1):
        win.model.go(step_index(win.model, "decode.softmax") + k)
        wait_decode(qtbot, win)
        text = insp.text.toPlainText()
        assert insp.cell is None and "was clicked" in text and "its own trace" in text, text
        assert "stage 5" not in text and "Book section" not in text, text
    go_to(win, qtbot, "trainable.weights_softmax")
    assert insp.cell == ("trainable", "attn_weights", (1, 0)) and insp.explanation.value == value
