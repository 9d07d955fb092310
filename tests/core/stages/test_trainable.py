"""Section 3.4 (core/stages/trainable.py): SelfAttention_v1 and _v2's numbers, derived by running the book's classes."""
import torch

from tests.core.book_reference import BOOK_INPUTS, SelfAttention_v1, SelfAttention_v2, same_4dp


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
