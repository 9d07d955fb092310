"""Independent references for the GUI tests: what each step's maps must show, from the core."""
from __future__ import annotations

import numpy as np

MASKED = {"masked_scores", "attn_weights", "masked_simple", "renormalized_weights", "dropped_weights"}


def expected_maps(panel, trace, batch_index: int = 0) -> list[np.ndarray]:
    """The display arrays of one panel: one per head (or batch item), masked cells NaN."""
    item = trace[panel.key]
    arr = item.numpy().astype(np.float64)
    if panel.diff:
        arr = arr - trace[panel.diff[1]].numpy().astype(np.float64)
    axes = list(item.axes)
    if len([a for a in axes if a not in ("batch", "head")]) == 1:     # biases: one row
        arr, axes = arr[..., None, :], axes[:-1] + ["name"] + axes[-1:]
    slices = [arr]
    if axes[0] == "batch":
        slices = list(arr) if panel.grid == "batch" else [arr[batch_index]]
        axes = axes[1:]
    if axes[0] == "head":
        slices = [h for s in slices for h in s]
    out = []
    for s in slices:
        s = np.array(s, dtype=np.float32)
        if (item.name in MASKED and item.stage in ("causal", "multihead") and trace.config.causal
                and tuple(item.axes[-2:]) == ("query", "key")):
            s[np.triu(np.ones(s.shape, dtype=bool), 1)] = np.nan
        s[~np.isfinite(s)] = np.nan
        if panel.rows:
            s = s[panel.rows[0]:panel.rows[1]]
        out.append(s)
    return out


def shown_maps(step_view) -> list[list[np.ndarray]]:
    """The arrays in the ImageItems of every panel of the step view."""
    return [[m.image.image for m in p.maps] for p in step_view.panels]
