"""Every cell's explanation rebuilds the cell's value from the terms it shows."""
import itertools
import math

import numpy as np
import pytest

from core import AttentionConfig, build_trace
from core.provenance import explain_cell

CONFIGS = {
    "book": AttentionConfig(),
    "v1-dropout": AttentionConfig(init="rand", seed=123, dropout=0.5),
    "batch-bias-heads": AttentionConfig(embeddings="random", text="the cat sat on the mat", d_in=4, d_out=6,
                                        num_heads=3, qkv_bias=True, batch=2, dropout=0.2),
}


@pytest.mark.parametrize("cfg_name", list(CONFIGS))
def test_every_cell_is_rebuilt_from_its_terms(cfg_name):
    trace = build_trace(CONFIGS[cfg_name])
    checked = 0
    for item in trace:
        arr = item.numpy()
        # every cell of small tensors; a sample of larger ones
        cells = list(itertools.product(*(range(n) for n in arr.shape)))[:: max(1, arr.size // 60)]
        for idx in cells:
            ex = explain_cell(trace, item.stage, item.name, idx)
            v = float(arr[idx])
            assert ex.value == v
            if math.isinf(v):
                assert ex.recomputed == v, (item.key, idx)
            else:
                assert abs(ex.recomputed - v) <= 1e-6, (item.key, idx, ex.text)
            for src in ex.sources:
                assert (src.stage, src.name) in trace
            checked += 1
    assert checked > 300


def test_score_cell_shows_products_and_sum():
    trace = build_trace(AttentionConfig(init="rand", seed=123))
    ex = explain_cell(trace, "trainable", "attn_scores", (1, 2))  # journey · starts
    q, k = trace["trainable", "queries"].numpy()[1], trace["trainable", "keys"].numpy()[2]
    assert [p[:2] for p in ex.products] == [(float(a), float(b)) for a, b in zip(q, k)]
    assert abs(sum(p[2] for p in ex.products) - float(trace["trainable", "attn_scores"].numpy()[1, 2])) <= 1e-6
    assert "journey" in ex.formula and "starts" in ex.formula
    assert abs(ex.value - 1.8111) < 5e-5  # the book's ω₂₃
    assert {(s.name, s.rows) for s in ex.sources} == {("queries", (1,)), ("keys", (2,))}


def test_masked_weight_says_why_it_is_zero():
    trace = build_trace(AttentionConfig())
    ex = explain_cell(trace, "causal", "attn_weights", (1, 4))
    assert ex.value == 0.0 and "masked" in ex.text


def test_multihead_output_uses_concat_and_out_proj():
    trace = build_trace(AttentionConfig(batch=2))
    ex = explain_cell(trace, "multihead", "context_vecs", (1, 0, 1))
    assert abs(ex.recomputed - 0.4858) < 5e-5
    assert any(s.name == "W_out" for s in ex.sources) and "b_out" in ex.text
    np.testing.assert_allclose([p[0] for p in ex.products], trace["multihead", "context_concat"].numpy()[1, 0])
