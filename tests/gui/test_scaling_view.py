"""Why 1/√d_k: the toggle removes the scaling; the peakedness plot shows the chapter's argument."""
from __future__ import annotations

import numpy as np

from tests.gui.fixtures import go_to


def test_toggle_removes_the_scaling_and_the_curves_show_the_argument(window, qtbot):
    window.docks["scaling"].show()
    view = window.scaling_view
    go_to(window, qtbot, "trainable.scaled")
    qtbot.waitUntil(lambda: not view._stale)
    trace = window.controller.trace
    img = view.heatmap.maps[0].image.image
    np.testing.assert_allclose(img, trace["trainable", "attn_weights"].numpy(), atol=1e-7)
    view.toggle.setChecked(False)
    s = trace["trainable", "attn_scores"].numpy().astype(np.float64)
    unscaled = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(view.heatmap.maps[0].image.image, unscaled, atol=1e-6)
    assert "no scaling" in view.heatmap.data.title
    assert np.max(unscaled, axis=1).mean() > np.max(trace["trainable", "attn_weights"].numpy(), axis=1).mean()
    view.toggle.setChecked(True)
    curves = {c.label: c for c in view.curves}
    assert len(curves) == 4
    unscaled_random = curves["random vectors, unscaled"].max_weight
    scaled_random = curves["random vectors, ÷ √d_k"].max_weight
    assert unscaled_random[-1] > 0.9 and unscaled_random[-1] > unscaled_random[0]   # collapses onto one key
    assert scaled_random[-1] < 0.7
    assert len(view.peak_plot.listDataItems()) == 4 and len(view.entropy_plot.listDataItems()) == 4
