"""Every table chapter 3 prints, reproduced at the matching stage and name.

Expected values are derived by running the book's own procedure (tests/core/book_reference.py:
seed, draw, compute) and compared to 4 decimals; a handful are also pinned as literals
copied from the chapter.
"""
import numpy as np
import pytest
import torch

from core import AttentionConfig, build_trace
from core.book import BOOK_SECTIONS, book_config
from tests.core.book_reference import (
    BOOK_INPUTS, CausalAttention, MultiHeadAttention, MultiHeadAttentionWrapper,
    SelfAttention_v1, SelfAttention_v2,
)


def same_4dp(actual, expected):
    """Equal to 4 decimals (and far closer: the app runs the same float32 ops)."""
    a = np.asarray(actual.detach() if isinstance(actual, torch.Tensor) else actual, dtype=np.float64)
    e = np.asarray(expected.detach() if isinstance(expected, torch.Tensor) else expected, dtype=np.float64)
    assert a.shape == e.shape
    finite = np.isfinite(e)
    assert np.array_equal(np.isfinite(a), finite) and np.array_equal(a[~finite], e[~finite])
    assert np.max(np.abs(a[finite] - e[finite]), initial=0.0) <= 5e-5, f"\n{a}\n!=\n{e}"


@pytest.fixture(scope="module")
def book_traces():
    return {key: build_trace(cfg) for key, (_, cfg) in BOOK_SECTIONS.items()}


# ---- 3.3 simplified self-attention -----------------------------------------------------------

def test_simplified_query_2_step_by_step(book_traces):
    t = book_traces["simplified"]
    inputs = BOOK_INPUTS
    query = inputs[1]
    attn_scores_2 = torch.empty(inputs.shape[0])
    for i, x_i in enumerate(inputs):
        attn_scores_2[i] = torch.dot(x_i, query)
    same_4dp(t["simplified", "attn_scores"].tensor[1], attn_scores_2)
    same_4dp(t["simplified", "attn_weights_sumnorm"].tensor[1], attn_scores_2 / attn_scores_2.sum())
    attn_weights_2 = torch.softmax(attn_scores_2, dim=0)
    same_4dp(t["simplified", "attn_weights"].tensor[1], attn_weights_2)
    context_vec_2 = torch.zeros(query.shape)
    for i, x_i in enumerate(inputs):
        context_vec_2 += attn_weights_2[i] * x_i
    same_4dp(t["simplified", "context_vecs"].tensor[1], context_vec_2)
    # literals printed in section 3.3.1
    same_4dp(t["simplified", "attn_scores"].tensor[1], [0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865])
    same_4dp(t["simplified", "attn_weights_sumnorm"].tensor[1], [0.1455, 0.2278, 0.2249, 0.1285, 0.1077, 0.1656])
    same_4dp(t["simplified", "attn_weights"].tensor[1], [0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581])
    same_4dp(t["simplified", "context_vecs"].tensor[1], [0.4419, 0.6515, 0.5683])


def test_simplified_all_queries(book_traces):
    t = book_traces["simplified"]
    attn_scores = BOOK_INPUTS @ BOOK_INPUTS.T
    attn_weights = torch.softmax(attn_scores, dim=-1)
    same_4dp(t["simplified", "inputs"].tensor, BOOK_INPUTS)
    same_4dp(t["simplified", "attn_scores"].tensor, attn_scores)
    same_4dp(t["simplified", "attn_weights"].tensor, attn_weights)
    same_4dp(t["simplified", "context_vecs"].tensor, attn_weights @ BOOK_INPUTS)
    same_4dp(t["simplified", "attn_scores"].tensor[0], [0.9995, 0.9544, 0.9422, 0.4753, 0.4576, 0.6310])
    same_4dp(t["simplified", "context_vecs"].tensor[5], [0.4177, 0.6503, 0.5645])


# ---- 3.4 trainable weights ----------------------------------------------------------------------

def test_self_attention_v1_query_2_and_output(book_traces):
    t = book_traces["v1"]
    d_in, d_out = 3, 2
    torch.manual_seed(123)
    W_query = torch.rand(d_in, d_out)
    W_key = torch.rand(d_in, d_out)
    W_value = torch.rand(d_in, d_out)
    x_2 = BOOK_INPUTS[1]
    query_2 = x_2 @ W_query
    keys = BOOK_INPUTS @ W_key
    values = BOOK_INPUTS @ W_value
    attn_scores_2 = query_2 @ keys.T
    attn_weights_2 = torch.softmax(attn_scores_2 / keys.shape[-1] ** 0.5, dim=-1)
    tr = t.stages["trainable"]
    same_4dp(tr["W_query"].tensor, W_query)
    same_4dp(tr["W_key"].tensor, W_key)
    same_4dp(tr["W_value"].tensor, W_value)
    same_4dp(tr["queries"].tensor[1], query_2)
    same_4dp(tr["keys"].tensor, keys)
    same_4dp(tr["values"].tensor, values)
    same_4dp(tr["attn_scores"].tensor[1, 1], query_2.dot(keys[1]))
    same_4dp(tr["attn_scores"].tensor[1], attn_scores_2)
    same_4dp(tr["scaled_scores"].tensor[1], attn_scores_2 / 2 ** 0.5)
    same_4dp(tr["attn_weights"].tensor[1], attn_weights_2)
    same_4dp(tr["context_vecs"].tensor[1], attn_weights_2 @ values)
    torch.manual_seed(123)
    sa_v1 = SelfAttention_v1(d_in, d_out)
    same_4dp(tr["context_vecs"].tensor, sa_v1(BOOK_INPUTS))
    # literals printed in section 3.4.1
    same_4dp(tr["queries"].tensor[1], [0.4306, 1.4551])
    same_4dp(tr["attn_scores"].tensor[1, 1], 1.8524)
    same_4dp(tr["attn_scores"].tensor[1], [1.2705, 1.8524, 1.8111, 1.0795, 0.5577, 1.5440])
    same_4dp(tr["attn_weights"].tensor[1], [0.1500, 0.2264, 0.2199, 0.1311, 0.0906, 0.1820])
    same_4dp(tr["context_vecs"].tensor[1], [0.3061, 0.8210])
    same_4dp(tr["context_vecs"].tensor[0], [0.2996, 0.8053])


def test_self_attention_v2(book_traces):
    tr = book_traces["v2"].stages["trainable"]
    torch.manual_seed(789)
    sa_v2 = SelfAttention_v2(3, 2)
    same_4dp(tr["W_query"].tensor, sa_v2.W_query.weight.T)
    same_4dp(tr["queries"].tensor, sa_v2.W_query(BOOK_INPUTS))
    same_4dp(tr["context_vecs"].tensor, sa_v2(BOOK_INPUTS))
    same_4dp(tr["context_vecs"].tensor[0], [-0.0739, 0.0713])
    same_4dp(tr["context_vecs"].tensor[5], [-0.0754, 0.0693])


# ---- 3.5 causal attention -----------------------------------------------------------------------

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


def test_multi_head_wrapper(book_traces):
    t = book_traces["wrapper"]
    batch = torch.stack((BOOK_INPUTS, BOOK_INPUTS), dim=0)
    torch.manual_seed(123)
    mha = MultiHeadAttentionWrapper(3, 2, batch.shape[1], 0.0, num_heads=2)
    got = t["multihead", "wrapper_context_vecs"].tensor
    same_4dp(got, mha(batch))
    same_4dp(got[0, 0], [-0.4519, 0.2216, 0.4772, 0.1063])
    same_4dp(got[0, 5], [-0.5299, -0.1081, 0.5077, 0.3493])
    for h, head in enumerate(mha.heads):
        same_4dp(t["multihead", "wrapper_W_query"].tensor[h], head.W_query.weight.T)


def test_multi_head_attention_fused(book_traces):
    t = book_traces["fused"]
    batch = torch.stack((BOOK_INPUTS, BOOK_INPUTS), dim=0)
    torch.manual_seed(123)
    mha = MultiHeadAttention(3, 2, batch.shape[1], 0.0, num_heads=2)
    expected = mha(batch)
    mh = t.stages["multihead"]
    same_4dp(mh["context_vecs"].tensor, expected)
    same_4dp(mh["attn_weights"].tensor, mha.last_attn_weights)
    same_4dp(mh["W_out"].tensor, mha.out_proj.weight.T)
    same_4dp(mh["b_out"].tensor, mha.out_proj.bias)
    same_4dp(mh["context_vecs"].tensor[0, 0], [0.3190, 0.4858])
    same_4dp(mh["context_vecs"].tensor[0, 5], [0.2575, 0.4028])


def test_default_config_is_the_fused_book_example():
    """The app opens on the book's sentence with d_out 2, 2 heads, linear/123."""
    cfg = AttentionConfig()
    assert (cfg.d_out, cfg.num_heads, cfg.init, cfg.seed) == (2, 2, "linear", 123)
    same_4dp(build_trace(cfg)["multihead", "context_vecs"].tensor[0], [0.3190, 0.4858])


def test_book_sections_are_valid_configs():
    assert book_config("fused").num_heads == 2
    assert set(BOOK_SECTIONS) == {"simplified", "v1", "v2", "causal", "causal_batch", "wrapper", "fused"}
