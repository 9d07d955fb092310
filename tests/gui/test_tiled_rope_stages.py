"""Stages 7 (tiled attention) and 8 (RoPE) in the window: the maps of their steps are core's
trace for the same settings (values, not only shapes) — a mid-row tile's running m, l and
rescale, the final O against ordinary attention, RoPE's rotated Q and the shifted-positions
check; a bad block size is one line and the last good trace stays; the inspector and code
panel; Export all writes the trace and its manifest. References: core.tiled.build_tiled and
core.rope.build_rope run here, and an independent softmax(QKᵀ/√d)V / rotation in float64."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PySide6 import QtWidgets

from core.rope import build_rope
from core.tiled import build_tiled, head_qkv
from core.tiled_config import RopeConfig, TiledConfig
from tests.gui.fixtures import step_index, TRACE_TIMEOUT_MS


@pytest.fixture
def win(window):
    """A fresh window per test (conftest's ``window``), named as these tests read it."""
    return window


def wait(qtbot, win, stage: str) -> None:
    ext = win.external[stage]
    qtbot.waitUntil(lambda: win.model.external[stage].trace is not None and not ext.busy
                    and win.model.external[stage].trace.config == ext.config, timeout=TRACE_TIMEOUT_MS)


def shown(win, stage: str, name: str):
    return next(d for d in win.model.shown if d.key == (stage, name))


def values(win, stage: str, name: str) -> list[np.ndarray]:
    return [np.asarray(m.values) for m in shown(win, stage, name).maps]


def prompt(win) -> dict:
    c = win.model.config
    return dict(device="cpu")               # the bars default to the book's sentence (TiledConfig's defaults)


def test_a_mid_row_tile_shows_core_s_running_m_l_and_rescale(qtbot, win):
    win.model.go(step_index(win.model, "tiled.max"))
    wait(qtbot, win, "tiled")
    assert win.external_bars["tiled"].isVisible()
    assert win.external["tiled"].set_options(block_rows=2, block_cols=2, causal=False, fa2=True, head=1)
    wait(qtbot, win, "tiled")
    ref = build_tiled(TiledConfig(block_rows=2, block_cols=2, causal=False, fa2=True, head=1, **prompt(win)))
    # FA2: query blocks outermost; 6 tokens → 3 × 3 tiles; step 4 = query block 1, key block 1 (mid-row)
    win.external_bars["tiled"].pointer.setValue(4)
    step = ref.steps[4]
    assert [int(v) for v in step["tile"].numpy()[:3]] == [4, 1, 1]
    for name in ("m_before", "m_after", "rescale", "m_tile"):
        np.testing.assert_allclose(values(win, "tiled_step", name)[0].reshape(-1), step[name].numpy(), rtol=0, atol=1e-6)
    # independently: the running max after key blocks 0, 1 of rows 2, 3, and α = exp(m_old − m_new)
    _inp, qkv, _d, _n = head_qkv(TiledConfig(head=1, **prompt(win)))
    Q, K = (qkv[n].double() for n in ("queries", "keys"))
    S = Q @ K.T / math.sqrt(Q.shape[1])
    m_old, m_new = S[2:4, :2].max(dim=1).values, S[2:4, :4].max(dim=1).values
    np.testing.assert_allclose(values(win, "tiled_step", "m_after")[0].reshape(-1), m_new.numpy(), atol=1e-5)
    np.testing.assert_allclose(values(win, "tiled_step", "rescale")[0].reshape(-1),
                               torch.exp(m_old - m_new).numpy(), atol=1e-5)
    win.model.go(step_index(win.model, "tiled.sum"))
    l_new = torch.exp(S[2:4, :4] - m_new[:, None]).sum(dim=1)
    np.testing.assert_allclose(values(win, "tiled_step", "l_after")[0].reshape(-1), l_new.numpy(), rtol=1e-5)
    np.testing.assert_allclose(values(win, "tiled_step", "l_before")[0].reshape(-1), step["l_before"].numpy(),
                               rtol=0, atol=1e-6)
    assert win.external_bars["tiled"].pointer_label.text() == "5/9 (q1·k1)"


def test_the_final_o_equals_ordinary_attention(qtbot, win):
    win.model.go(step_index(win.model, "tiled.final"))
    wait(qtbot, win, "tiled")
    ref = build_tiled(TiledConfig(**prompt(win)))                  # the bar's defaults: 2 × 2, causal, FA1, head 0
    O = values(win, "tiled_result", "output")[0]
    np.testing.assert_allclose(O, ref["tiled_result", "output"].numpy(), rtol=0, atol=1e-6)
    _inp, qkv, _d, _n = head_qkv(TiledConfig(**prompt(win)))
    Q, K, V = (qkv[n].double() for n in ("queries", "keys", "values"))
    S = (Q @ K.T / math.sqrt(Q.shape[1])).masked_fill(torch.triu(torch.ones(6, 6, dtype=torch.bool), 1), -math.inf)
    Z = torch.softmax(S, dim=1) @ V
    np.testing.assert_allclose(values(win, "tiled_result", "reference")[0], Z.numpy(), atol=1e-6)
    np.testing.assert_allclose(O, Z.numpy(), atol=1e-6)
    diff = next(d for d in win.model.shown if d.extra.get("max_abs_diff") is not None)
    assert diff.extra["max_abs_diff"] <= 1e-6 and "max |diff|" in diff.title
    win.model.go(step_index(win.model, "tiled.lse"))
    np.testing.assert_allclose(values(win, "tiled_result", "lse")[0].reshape(-1),
                               torch.logsumexp(S, dim=1).numpy(), atol=1e-5)
    win.model.go(step_index(win.model, "tiled.final"))
    assert "max |O − softmax(QKᵀ/√d)V| = " in win.explanation.toPlainText()


def test_the_tiles_grid_and_memory_traffic(qtbot, win):
    win.model.go(step_index(win.model, "tiled.grid"))
    wait(qtbot, win, "tiled")
    tiles = values(win, "tiled_result", "tiles")[0]
    assert tiles.shape == (9, 9) and int(tiles[:, 6].sum()) == 6            # causal 3 × 3: 3 skipped
    grid = values(win, "tiled_view", "grid")[0]
    # FA1 (key blocks outermost), causal: k0 visits q0, q1, q2 (steps 0–2), k1: q1, q2, k2: q2
    expected = np.array([[0, -1, -1], [1, 3, -1], [2, 4, 5]])
    np.testing.assert_array_equal(grid, expected)
    win.model.go(step_index(win.model, "tiled.io"))
    from core.flash_io import flash_io, standard_io
    traffic = values(win, "tiled_view", "traffic")[0]
    assert traffic[0, -1] == standard_io(16384, 8).total * 4 / 1e6
    assert traffic[1, -1] == flash_io(16384, 8, 2, 2, True, False).total * 4 / 1e6
    # the paper's blocks for 192 KiB of float32: M = 49152 elements, Bc = ⌈M / 4d⌉ = 1536, Br = min(Bc, d) = 8
    assert traffic[2, -1] == flash_io(16384, 8, 8, 1536, True, False).total * 4 / 1e6
    assert traffic[2, -1] < traffic[0, -1] < traffic[1, -1]                    # 2 × 2 blocks read K, V 8192 times


def test_a_bad_block_size_is_one_line_and_the_last_trace_stays(qtbot, win):
    win.model.go(step_index(win.model, "tiled.tile"))
    wait(qtbot, win, "tiled")
    before, options = win.model.external["tiled"].trace, win.external["tiled"].options
    messages = []
    win.external["tiled"].error.connect(messages.append)
    win.statusBar().clearMessage()
    assert not win.external["tiled"].set_options(block_rows=65)
    qtbot.wait(50)
    assert len(messages) == 1 and messages[0].startswith("block rows:") and "\n" not in messages[0], messages
    assert win.statusBar().currentMessage() == messages[0]
    assert win.model.external["tiled"].trace is before and win.external["tiled"].options == options
    assert win.external_bars["tiled"].spins["block_rows"].value() == options.block_rows
    assert win.model.shown


def test_rope_rotated_q_and_the_shift_check(qtbot, win):
    win.model.go(step_index(win.model, "rope.rotated"))
    wait(qtbot, win, "rope")
    assert win.external["rope"].set_options(base=1_000_000.0, form="interleaved", shift=7)
    wait(qtbot, win, "rope")
    cfg = RopeConfig(base=1_000_000.0, form="interleaved", shift=7, **prompt(win))
    ref = build_rope(cfg)
    Qr = values(win, "rope", "queries_rot")[0]
    np.testing.assert_allclose(Qr, ref["rope", "queries_rot"].numpy(), rtol=0, atol=1e-6)
    # independently: interleaved pairs (2i, 2i+1) as complex numbers times e^{i m θ_i}, float64
    _inp, qkv, _d, _n = head_qkv(cfg)
    Q = qkv["queries"].double()
    T, d = Q.shape
    theta = 1_000_000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * theta[None, :]
    z = torch.view_as_complex(Q.reshape(T, d // 2, 2).contiguous()) * torch.polar(torch.ones_like(ang), ang)
    np.testing.assert_allclose(Qr, torch.view_as_real(z).reshape(T, d).numpy(), atol=1e-5)
    win.model.go(step_index(win.model, "rope.shift"))
    np.testing.assert_allclose(values(win, "rope", "scores_shifted")[0], ref["rope", "scores_shifted"].numpy(),
                               rtol=0, atol=1e-6)
    diff = next(d for d in win.model.shown if d.extra.get("max_abs_diff") is not None)
    assert diff.extra["max_abs_diff"] <= 1e-4
    assert abs(diff.extra["max_abs_diff"] - float(ref["rope", "shift_check"].numpy().reshape(-1)[0])) <= 1e-6
    win.model.go(step_index(win.model, "rope.qpairs"))
    pairs = values(win, "rope", "q_pairs_rot")
    assert len(pairs) == T                                              # one map per position
    np.testing.assert_allclose(pairs[3], ref["rope", "q_pairs_rot"].numpy()[3], rtol=0, atol=0)


def test_every_new_step_draws_and_its_texts_fill_in(qtbot, win):
    for stage in ("tiled", "rope"):
        idx = [i for i, s in enumerate(win.model.steps) if s.stage == stage]
        assert len(idx) == {"tiled": 8, "rope": 8}[stage]
        win.model.go(idx[0])
        wait(qtbot, win, stage)
        for i in idx:
            win.model.go(i)
            assert (win.model.shown or win.model.step.view == "dial") and win.model.draw_error is None, i
            text = win.explanation.toPlainText()
            assert "{{" not in text and "Computing" not in text, (win.model.steps[i].id, text[:200])


def test_inspector_and_code_panel_on_the_new_stages(qtbot, win):
    win.model.go(step_index(win.model, "tiled.tile"))
    wait(qtbot, win, "tiled")
    k = next(i for i, d in enumerate(win.model.shown) if d.key == ("tiled_step", "scores"))
    win.model.click(k, 0, 0, 0)
    e = win.inspector.explanation
    assert e is not None and e.name == "scores" and e.kind == "dot" and abs(e.recomputed - e.value) <= 1e-5
    assert win.code_panel.highlighted_line()
    win.model.go(step_index(win.model, "tiled.final"))       # FA2: O = the last tile's accumulator for its row / l
    assert win.external["tiled"].set_options(fa2=True)
    wait(qtbot, win, "tiled")
    k = next(i for i, d in enumerate(win.model.shown) if d.key == ("tiled_result", "output"))
    win.model.click(k, 0, 5, 3)
    e = win.inspector.explanation
    assert e is not None and e.name == "output" and e.kind == "ratio" and abs(e.recomputed - e.value) <= 1e-5
    win.model.go(step_index(win.model, "rope.angles"))
    wait(qtbot, win, "rope")
    k = next(i for i, d in enumerate(win.model.shown) if d.key == ("rope", "angles"))
    win.model.click(k, 0, 3, 1)
    e = win.inspector.explanation
    assert e.name == "angles" and abs(e.recomputed - e.value) <= 1e-5


@pytest.mark.parametrize("stage, step_id", [("tiled", "tiled.final"), ("rope", "rope.shift")])
def test_export_all_writes_the_trace_and_manifest(qtbot, win, tmp_path, monkeypatch, stage, step_id):
    win.model.go(step_index(win.model, step_id))
    wait(qtbot, win, stage)
    out = tmp_path / f"{stage}_export"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    with qtbot.waitSignal(win.export_finished, timeout=TRACE_TIMEOUT_MS):
        win.actions["export_all"].trigger()
    folders = {p.name for p in out.iterdir() if p.is_dir()}
    trace = win.model.external[stage].trace
    assert folders == set(trace.stages)                      # the whole trace, not the pointer's alias
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["head_dim"] == 8
    if stage == "tiled":
        rows = (out / "tiled_result" / "check.csv").read_text().splitlines()
        assert len(rows) >= 2
    else:
        assert (out / "rope" / "q_pairs_p3.csv").exists()


def test_the_rope_dial_draws_the_pointer_s_pairs(qtbot, win):
    win.model.go(step_index(win.model, "rope.dial"))
    wait(qtbot, win, "rope")
    assert win.stack.currentWidget() is win.rope_dial
    win.external_bars["rope"].pointer.setValue(4)
    ref = build_rope(RopeConfig(**prompt(win)))
    drawn = win.rope_dial.drawn
    assert len(drawn) == 4                                             # hd 8: 4 pairs
    for i, d in enumerate(drawn):
        x, y = ref["rope", "q_pairs"].numpy()[4][i]
        a = 4 * 10000.0 ** (-2 * i / 8)                                # m·θ_i, written out
        assert abs(d["angle"] - a) <= 1e-6
        np.testing.assert_allclose(d["q_pairs_rot"], (x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)),
                                   atol=1e-5)
        assert abs(math.hypot(*d["k_pairs_rot"]) - math.hypot(*d["k_pairs"])) <= 1e-5


def test_a_bad_typed_base_is_one_line_and_the_last_trace_stays(qtbot, win):
    win.model.go(step_index(win.model, "rope.scores"))
    wait(qtbot, win, "rope")
    before, options = win.model.external["rope"].trace, win.external["rope"].options
    messages = []
    win.external["rope"].error.connect(messages.append)
    bar = win.external_bars["rope"]
    for typed in ("abc", "0.5"):
        bar.base.setEditText(typed)
        bar.base.lineEdit().editingFinished.emit()
        qtbot.wait(50)
    assert len(messages) == 2 and all(m.startswith("base: must be a number above 1") for m in messages), messages
    assert win.model.external["rope"].trace is before and win.external["rope"].options == options
    assert bar.base.currentText() == "10000"
