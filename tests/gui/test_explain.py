"""The explanation pane's HTML (gui/explain.py): undefined values are named, never shown bare."""
import numpy as np

from core import AttentionConfig, build_trace
from core.inputs import Inputs
from gui.explain import explanation_html
from gui.steps import load_steps


def _trace(rows):
    tokens = [f"t{i}" for i in range(len(rows))]
    cfg = AttentionConfig(embeddings="random", text=" ".join(tokens), d_in=3, d_out=2, num_heads=1, init="linear")
    return build_trace(cfg, inputs=Inputs(tokens, rows))


def test_a_padding_row_makes_the_sumnorm_step_say_why_its_cells_are_empty():
    trace = _trace([[0.0, 0.0, 0.0], [0.5, 0.2, 0.1], [0.3, 0.9, 0.4]])         # t0: an all-zero embedding
    weights = trace["simplified", "attn_weights_sumnorm"].numpy()
    assert np.isnan(weights[0]).all() and np.isfinite(weights[1:]).all()         # 0/0 on the padding row only
    steps = [s for s in load_steps() if any(p.key == ("simplified", "attn_weights_sumnorm") for p in s.panels)]
    assert steps
    for step in steps:
        page = explanation_html(step, trace, book=False, source="Custom settings")
        assert "Undefined values" in page and "simplified.attn_weights_sumnorm holds 3 nan" in page
        assert "row sum of 0" in page
    other = next(s for s in load_steps() if all(p.key[0] == "trainable" for p in s.panels))
    assert "Undefined values" not in explanation_html(other, trace, book=False, source="Custom settings")


def test_no_note_when_every_value_is_a_number():
    trace = _trace([[0.1, 0.0, 0.0], [0.5, 0.2, 0.1]])
    for step in load_steps():
        assert "Undefined values" not in explanation_html(step, trace, book=False, source="Custom settings")


def test_the_hatching_note_only_where_the_mask_hides_cells():
    trace = _trace([[0.1, 0.0, 0.0], [0.5, 0.2, 0.1]])           # causal by default
    steps = {s.id: s for s in load_steps()}
    note = "hatched cells are hidden by the causal mask"
    assert note in explanation_html(steps["causal.approach_b"], trace, book=False, source="Custom settings")
    assert note not in explanation_html(steps["trainable.weights"], trace, book=False, source="Custom settings")
    uncausal = build_trace(AttentionConfig(embeddings="random", text="a b", d_in=3, d_out=2, num_heads=1,
                                           causal=False))
    assert note not in explanation_html(steps["causal.approach_b"], uncausal, book=False, source="Custom settings")
