"""Section 3.5 (core/stages/causal.py): masking, dropout and CausalAttention on a batch, against the book."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core import build_trace
from tests.core.book_reference import BOOK_INPUTS, CausalAttention, SelfAttention_v2, same_4dp
from tests.core.references import IDS, SIZES, TOL, batched, make_config, max_diff


def _book_causal_section():
    """Section 3.5.1-3.5.2 run as the book runs it (sa_v2 with seed 789)."""
    torch.manual_seed(789)
    sa_v2 = SelfAttention_v2(3, 2)
    queries = sa_v2.W_query(BOOK_INPUTS)
    keys = sa_v2.W_key(BOOK_INPUTS)
    attn_scores = queries @ keys.T
    attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
    context_length = attn_scores.shape[0]
    mask_simple = torch.tril(torch.ones(context_length, context_length))
    masked_simple = attn_weights * mask_simple
    masked_simple_norm = masked_simple / masked_simple.sum(dim=-1, keepdim=True)
    mask = torch.triu(torch.ones(context_length, context_length), diagonal=1)
    masked = attn_scores.masked_fill(mask.bool(), -torch.inf)
    attn_weights_b = torch.softmax(masked / keys.shape[-1] ** 0.5, dim=1)
    torch.manual_seed(123)
    dropout = torch.nn.Dropout(0.5)
    dropped_ones = dropout(torch.ones(6, 6))
    torch.manual_seed(123)
    dropped = dropout(attn_weights_b)
    return dict(attn_weights=attn_weights, mask_simple=mask_simple, masked_simple=masked_simple,
                masked_simple_norm=masked_simple_norm, masked=masked, attn_weights_b=attn_weights_b,
                dropped_ones=dropped_ones, dropped=dropped,
                values=sa_v2.W_value(BOOK_INPUTS))


def test_causal_masking_and_dropout(book_traces):
    ref = _book_causal_section()
    t = book_traces["causal"]
    ca = t.stages["causal"]
    same_4dp(t["trainable", "attn_weights"].tensor, ref["attn_weights"])
    same_4dp(ca["mask"].tensor, ref["mask_simple"])
    same_4dp(ca["masked_simple"].tensor, ref["masked_simple"])
    same_4dp(ca["renormalized_weights"].tensor, ref["masked_simple_norm"])
    same_4dp(ca["masked_scores"].tensor, ref["masked"])
    same_4dp(ca["attn_weights"].tensor, ref["attn_weights_b"])
    # The 50% dropout example: the keep mask scaled by 1/(1-p) is dropout(torch.ones(6, 6)).
    same_4dp(ca["dropout_mask"].tensor / 0.5, ref["dropped_ones"])
    same_4dp(ca["dropped_weights"].tensor, ref["dropped"])
    same_4dp(ca["context_vecs"].tensor, ref["dropped"] @ ref["values"])
    # literals printed in sections 3.5.1 and 3.5.2
    same_4dp(ca["attn_weights"].tensor[1, :2], [0.5517, 0.4483])
    same_4dp(ca["attn_weights"].tensor[5], [0.1935, 0.1663, 0.1666, 0.1542, 0.1666, 0.1529])
    same_4dp(ca["masked_scores"].tensor[1, :2], [0.4656, 0.1723])
    assert ca["masked_scores"].tensor[1, 2] == float("-inf")
    same_4dp(t["trainable", "attn_weights"].tensor[0], [0.1921, 0.1646, 0.1652, 0.1550, 0.1721, 0.1510])


def test_causal_attention_on_a_batch(book_traces):
    t = book_traces["causal_batch"]
    batch = torch.stack((BOOK_INPUTS, BOOK_INPUTS), dim=0)
    torch.manual_seed(123)
    ca = CausalAttention(3, 2, batch.shape[1], 0.0)
    expected = ca(batch)
    got = t["causal", "context_vecs"]
    assert got.axes[0] == "batch" and got.shape == (2, 6, 2)
    same_4dp(got.tensor, expected)
    same_4dp(got.tensor[0, 0], [-0.4519, 0.2216])
    same_4dp(got.tensor[1, 5], [-0.5299, -0.1081])


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_trainable_and_causal_equal_sdpa(size, dtype):
    cfg = make_config(size, dtype)
    t = build_trace(cfg)
    tr = t.stages["trainable"]
    q, k, v = tr["queries"].tensor, tr["keys"].tensor, tr["values"].tensor
    ref = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]
    assert max_diff(tr["context_vecs"].tensor, ref) <= TOL[dtype]
    # causal stage: the batch of copies, masked when causal (dropout 0)
    qb, kb, vb = (x.expand(cfg.batch, *x.shape) for x in (q, k, v))
    ref_c = F.scaled_dot_product_attention(qb, kb, vb, is_causal=cfg.causal)
    got = batched(t["causal", "context_vecs"].tensor, cfg.batch)
    assert got.shape == ref_c.shape
    assert max_diff(got, ref_c) <= TOL[dtype]
