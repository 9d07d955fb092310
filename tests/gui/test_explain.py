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


def test_stage_5_names_the_scores_of_the_head_drawn():
    """The explanation's Shown part on stage 5: the drawn head's scores (core.head_scores on its
    weights, checked here against sums written out), or the layer's most telling heads."""
    import numpy as np

    from core.pretrained import build_pretrained
    from core.pretrained_config import PretrainedConfig
    from gui.explain import head_scores_line
    trace = build_pretrained(PretrainedConfig(layer=0, device="cpu"))
    a = trace["pretrained", "attn_weights"].numpy().astype(np.float64)          # (12, T, T)
    words = [i for i, s in enumerate(trace.pieces.special) if not s]
    prev = [a[:, i, i - 1] for i in words if i - 1 in words]
    prev_share = np.mean(prev, axis=0)
    line = head_scores_line(trace, 3)
    assert line.startswith("layer 0, head 3: previous-token share " + f"{prev_share[3]:.2f}")
    assert f"on [CLS] {np.mean(a[3, words, 0]):.2f}" in line
    best = int(prev_share.argmax())
    assert f"most previous-token head {best} ({prev_share[best]:.2f})" in head_scores_line(trace, None)
    step = next(s for s in load_steps() if s.id == "pretrained.weights")
    assert "layer 0, head 3: previous-token share" in explanation_html(step, trace, False, "x", head=3)
