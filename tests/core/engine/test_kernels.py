"""core.engine.kernels against the lines of core/stages/multihead.py they replace, on sizes that take them."""

import pytest
import torch

from core.engine import kernels
from core.stages.causal import causal_mask


def plain_masked_softmax(scores, mask, d_k):
    """The book's lines (core.stages.multihead.fused)."""
    masked_scores = scores.masked_fill(mask == 0, -torch.inf)
    return torch.softmax(masked_scores / d_k ** 0.5, dim=-1)


@pytest.mark.parametrize("tokens,heads,d_k,causal", [
    (6, 2, 4, True),        # small: one pass
    (520, 8, 64, True),     # ≥ 8 MiB: row chunks, √d_k a power of two (scale and mask in one add)
    (520, 8, 3, True),      # row chunks, √d_k = √3 (divide, then mask)
    (600, 8, 16, False),    # row chunks, nothing masked
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masked_softmax_equals_the_formula(tokens, heads, d_k, causal, dtype):
    g = torch.Generator().manual_seed(tokens + d_k)
    scores = (torch.randn(1, heads, tokens, tokens, generator=g, dtype=dtype) * 4).contiguous()
    before = scores.clone()
    mask = causal_mask(tokens, causal, dtype=dtype)
    got = kernels.masked_softmax(scores, mask, d_k)
    want = plain_masked_softmax(scores, mask, d_k)
    assert torch.equal(scores, before)                        # the input is left as it was
    assert float((got - want).abs().max()) <= (1e-6 if dtype == torch.float32 else 1e-13)
    if causal:
        assert torch.all(got.triu(diagonal=1) == 0)           # masked weights are exactly 0
    assert torch.allclose(got.sum(-1), torch.ones((), dtype=dtype))


@pytest.mark.parametrize("tokens", [255, 256, 257, 1000])
def test_mix_causal_equals_weights_at_values(tokens):
    g = torch.Generator().manual_seed(tokens)
    b, h, hd = 2, 3, 5
    scores = torch.randn(b, h, tokens, tokens, generator=g, dtype=torch.float64)
    weights = plain_masked_softmax(scores, causal_mask(tokens, True, dtype=torch.float64), 4)
    values = torch.randn(b, h, tokens, hd, generator=g, dtype=torch.float64)
    merged = torch.full((b, tokens, h, hd), float("nan"), dtype=torch.float64)  # every cell must be written
    got = kernels.mix_causal(weights, values, merged.transpose(1, 2))
    assert got.data_ptr() == merged.data_ptr()               # written in place of the merged layout
    assert float((got - weights @ values).abs().max()) <= 1e-12
    assert torch.equal(got.transpose(1, 2).contiguous().view(b, tokens, h * hd), merged.view(b, tokens, h * hd))


@pytest.mark.parametrize("tokens,heads,hd", [(6, 2, 3), (700, 12, 2)])    # 700² × 12 floats ≥ the pool's 8 MiB
def test_scores_into_a_pooled_buffer_equal_queries_at_keys_transposed(tokens, heads, hd):
    g = torch.Generator().manual_seed(tokens)
    queries = torch.randn(1, heads, tokens, hd, generator=g)
    keys = torch.randn(1, heads, tokens, hd, generator=g)
    # same kernel (one matmul), different output buffer: exactly equal
    assert torch.equal(kernels.scores(queries, keys), queries @ keys.transpose(2, 3))
