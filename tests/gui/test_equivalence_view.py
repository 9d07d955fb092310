"""gui/equivalence_view.py: the difference heatmaps of the chapter's equal implementations."""
from __future__ import annotations

import numpy as np

from core import AttentionConfig, build_trace
from gui.equivalence_view import COMPARISONS, compute
from tests.gui.fixtures import go_to, TRACE_TIMEOUT_MS, wait_trace


def check_view(view) -> None:
    assert set(view.results) == {c.key for c in COMPARISONS}
    for c in COMPARISONS:
        diff = view.results[c.key]
        assert diff <= 1e-6, (c.key, diff)
        img = view.panels[c.key].maps[0].image.image
        assert np.nanmax(np.abs(img)) <= 1e-6, c.key
        assert f"max |diff| = {diff:.2e}" in view.captions[c.key].text()
        assert f"max |diff| = {diff:.2e}" in view.datas[c.key].title


def test_every_difference_heatmap_is_within_1e_6(window, qtbot):
    window.docks["equivalences"].show()
    view = window.equivalences
    for step_id in ("simplified.scores", "trainable.scores", "causal.compare", "multihead.out_proj"):
        go_to(window, qtbot, step_id)          # each book section's trace
        qtbot.waitUntil(lambda: not view._stale)
        check_view(view)
    c = window.controller
    wait_trace(window, qtbot, lambda: c.set_params(d_out=6, num_heads=3, qkv_bias=True, batch=2, dropout=0.3,
                                                  init="rand", seed=7))
    qtbot.waitUntil(lambda: not view._stale)
    check_view(view)
    assert view.datas["fused"].shape == (6, 6)


def test_the_stepper_shows_approach_a_beside_b_and_the_view_adds_the_rest(window, qtbot):
    go_to(window, qtbot, "causal.compare")
    diff_panels = [d for d in window.step_view.datas if d.extra.get("max_abs_diff") is not None]
    assert [d.key for d in diff_panels] == [("causal", "renormalized_weights")]
    assert diff_panels[0].extra["max_abs_diff"] <= 1e-6


def test_compute_on_float64_random_text():
    trace = build_trace(AttentionConfig(embeddings="random", text="a b c d e f g h", d_in=5, d_out=4,
                                        num_heads=2, dtype="float64", causal=False))
    for key, (d, diff) in compute(trace).items():
        assert diff <= 1e-12, key
        assert np.max(np.abs(d)) == diff


def test_equivalences_at_gpt2_width_with_an_overflowing_naive_softmax(window, qtbot):
    """768-d random embeddings: the simplified stage's naive softmax overflows (nan cells); the
    equivalence view still opens, with finite colour levels."""
    import math
    c = window.controller
    with qtbot.waitSignal(c.trace_changed, timeout=TRACE_TIMEOUT_MS):
        c.set_params(embeddings="random", text="a b c d e f", d_in=768, d_out=768, num_heads=12)
    window.docks["equivalences"].show()
    qtbot.waitUntil(lambda: bool(window.equivalences.datas), timeout=TRACE_TIMEOUT_MS)
    for data in window.equivalences.datas.values():
        assert all(math.isfinite(v) for v in data.levels)
