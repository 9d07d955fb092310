"""The chapter's argument for 1/√d_k, measured: unscaled softmax saturates as d_k grows."""
import math

from core import AttentionConfig
from core.scaling import peakedness_curve


def test_unscaled_softmax_saturates_and_scaled_stays_steady():
    curves = {c.label: c for c in peakedness_curve(AttentionConfig(), random_tokens=32)}
    unscaled = curves["random vectors, unscaled"]
    scaled = curves["random vectors, ÷ √d_k"]
    assert unscaled.d_ks[-1] == 512
    assert unscaled.max_weight[-1] > 0.85            # nearly all weight on one key
    assert unscaled.entropy[-1] < 0.5 < 2.5 < unscaled.entropy[1]
    assert max(scaled.max_weight) - min(scaled.max_weight) < 0.1   # steady at every d_k
    assert scaled.entropy[-1] > 1.0 and scaled.entropy[-1] <= math.log(32) + 1e-9
    for c in curves.values():
        assert all(1 / 32 - 1e-9 <= v <= 1 + 1e-12 for v in c.max_weight) or "inputs" in c.label
    ours = curves["your inputs, unscaled"]
    assert ours.max_weight[-1] >= ours.max_weight[0]
