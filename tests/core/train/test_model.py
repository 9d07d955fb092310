"""The model's attention layer is chapter 3's MultiHeadAttention: same numbers as the book's class
and as the stepper's own multihead stage, given the same weights."""
import pytest
import torch
from torch import nn

from core.train.model import MultiHeadAttention, build_model, layer_weights
from core.weights import Projection

from core.stages.causal import causal_mask
from tests.core import book_reference
from core.stages.multihead import fused as stage4_fused


# the chapter's MultiHeadAttention (section 3.6.2) as printed, in-place masked_fill_ included
BookMultiHeadAttention = book_reference.MultiHeadAttention


SIZES = [(3, 2, 6, 2, 2), (16, 16, 12, 4, 3), (64, 64, 32, 4, 2), (24, 48, 9, 6, 1)]  # d_in, d_out, T, h, b


@pytest.mark.parametrize("d_in,d_out,T,h,b", SIZES)
def test_layer_equals_the_books_class_and_the_multihead_stage(d_in, d_out, T, h, b):
    torch.manual_seed(d_in * 100 + T)
    book = BookMultiHeadAttention(d_in, d_out, T, 0.0, h).eval()
    ours = MultiHeadAttention(d_in, d_out, T, 0.0, h).eval()
    ours.load_state_dict(book.state_dict())
    x = torch.randn(b, T, d_in)
    with torch.no_grad():
        expected = book(x)
        context_vecs, attn_weights = ours(x, return_weights=True)
        w = layer_weights(ours)
        stage = stage4_fused(x, {"query": Projection(w["W_query"]), "key": Projection(w["W_key"]),
                                 "value": Projection(w["W_value"])},
                             Projection(w["W_out"], w["b_out"]), h, causal_mask(T, True))
    # same operations in the same order as the book's class: float32 rounding can differ only in
    # how a fused kernel sums a row, far below 1e-6 at these sizes
    assert (context_vecs - expected).abs().max().item() <= 1e-6
    assert (stage["context_vecs"] - expected).abs().max().item() <= 1e-6
    assert (stage["attn_weights"] - attn_weights).abs().max().item() <= 1e-6
    # causal: nothing above the diagonal, rows sum to 1
    assert torch.all(attn_weights.triu(diagonal=1) == 0)
    assert torch.allclose(attn_weights.sum(-1), torch.ones(b, h, T), atol=1e-6)


def test_forward_keeps_the_unmasked_scores():
    """The book's masked_fill_ overwrites attn_scores; ours masks into a new tensor (checked by
    recording the scores the mask receives)."""
    torch.manual_seed(0)
    layer = MultiHeadAttention(8, 8, 5, 0.0, 2)
    seen = {}
    original = torch.Tensor.masked_fill

    def spy(self, mask, value):
        seen["before"] = self.clone()
        out = original(self, mask, value)
        seen["after"] = self
        return out

    x = torch.randn(1, 5, 8)
    torch.Tensor.masked_fill = spy
    try:
        layer(x)
    finally:
        torch.Tensor.masked_fill = original
    assert torch.equal(seen["before"], seen["after"])
    assert torch.isfinite(seen["after"]).all()


def test_build_model_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a = build_model(10, 8, 16, 2, 2, seed=5)
    b = build_model(10, 8, 16, 2, 2, seed=5)
    c = build_model(10, 8, 16, 2, 2, seed=6)
    assert torch.equal(torch.get_rng_state(), state)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
        if not name.endswith("mask"):
            assert not torch.equal(pa, pc), name
    # nn.Linear's default bound 1/√fan_in and the triu mask
    w = a.layers[0].W_query.weight
    assert w.abs().max() <= 1 / 16 ** 0.5 and w.abs().max() > 0.8 / 16 ** 0.5
    assert torch.equal(a.layers[1].mask, torch.triu(torch.ones(8, 8), diagonal=1))
