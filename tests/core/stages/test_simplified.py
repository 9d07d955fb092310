"""Section 3.3 (core/stages/simplified.py): the chapter's printed numbers, derived by running its procedure."""
import torch

from tests.core.book_reference import BOOK_INPUTS, same_4dp


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
