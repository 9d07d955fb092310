"""The default runs learn their task's pattern (seeded, CPU; ~10 s per induction seed)."""
import math

import numpy as np
import pytest
import torch

from core.train.metrics import (best_heads, best_heads_text, induction_pairs, induction_score, pattern_score,
                                previous_token_score, repeat_start)
from core.train.runner import train
from core.train.settings import defaults_for
from core.train.tasks import SKIP_RATE, make_task


def test_previous_token_is_learned(previous_token_run):
    last = previous_token_run.snapshots[-1]
    assert last.accuracy >= 0.95
    head_scores = previous_token_score(last.attn_weights[0])          # (h,) of the only layer
    assert head_scores.max() >= 0.9
    assert np.allclose(last.scores[0], head_scores)
    # and it was learned: at step 0 the weights are near uniform over the visible keys
    assert previous_token_run.snapshots[0].scores.max() < 0.5


@pytest.fixture(scope="module", params=[0, 1, 2])
def seeded_induction_run(request, induction_run):
    """The default induction run for seeds 0 (the session's shared run), 1 and 2."""
    if request.param == induction_run.settings.seed:
        return induction_run
    return train(defaults_for("induction", device="cpu", seed=request.param))


def test_induction_learns_the_two_head_circuit(seeded_induction_run):
    """Olsson et al.'s circuit with the app's default settings: the top induction score belongs to
    a layer-1 head (≥ 0.5) and a layer-0 head attends to the previous token (≥ 0.5)."""
    run = seeded_induction_run
    s, tokens = run.settings, run.probe_tokens
    first, last = run.snapshots[0], run.snapshots[-1]
    induction = induction_score(last.attn_weights, tokens)          # (L, h)
    previous = previous_token_score(last.attn_weights)              # (L, h)
    layer, head = np.unravel_index(int(induction.argmax()), induction.shape)
    assert layer == 1 and induction[layer, head] >= 0.5, induction
    assert previous[0].max() >= 0.5, previous
    assert np.allclose(last.scores, induction)                      # the snapshot's scores are the induction scores
    assert best_heads(last.attn_weights, tokens)["induction"][:2] == (1, int(head))
    assert best_heads_text(last.attn_weights, tokens, "induction").startswith("circuit: previous-token head layer 0 ")
    # the repeat is predicted; the random part is not (a quarter of its tokens follow the +1 rule)
    assert last.loss_second < 0.25 * first.loss_second
    assert last.loss_first > (1 - SKIP_RATE) * math.log(s.vocab_size) - 0.5
    # and nothing was there at the start
    assert np.nanmax(induction_score(first.attn_weights, tokens)) < 0.2


def test_the_repeat_length_varies_so_position_alone_cannot_find_the_copy():
    s = defaults_for("induction", device="cpu")
    task = make_task(s)
    batch = task.batch(512, torch.Generator().manual_seed(5))
    T = task.context_length
    lengths = batch.repeat.sum(dim=1) + 1                           # the repeat predicts n − 1 tokens
    assert lengths.min() == s.seq_len // 4 and lengths.max() == s.seq_len
    assert len(set(lengths.tolist())) == s.seq_len - s.seq_len // 4 + 1
    for row, n in zip(batch.inputs[:20], lengths[:20].tolist()):
        assert torch.equal(row[T - n:], row[T - 2 * n:T - n])        # the last n tokens repeat the n before them
    # the +1 rule: about a quarter of the tokens outside the repeat are the token two back plus 1
    x = batch.inputs
    outside = ~batch.repeat[:, 2:] & (torch.arange(2, T) < T - lengths[:, None])
    rule = (x[:, 2:] == (x[:, :-2] + 1) % s.vocab_size)[outside].float().mean()
    assert abs(float(rule) - (SKIP_RATE + (1 - SKIP_RATE) / s.vocab_size)) < 0.02


def test_the_probe_repeats_once_with_distinct_tokens_before():
    task = make_task(defaults_for("induction", device="cpu"))
    probe, T = task.probe.tolist(), task.context_length
    start = repeat_start(probe)
    n = T - start
    assert 4 <= n < 16
    assert len(set(probe[:start])) == start                          # all distinct before the repeat
    assert probe[start:] == probe[start - n:start]
    queries, keys = induction_pairs(probe)
    assert queries.tolist() == list(range(start, T)) and keys.tolist() == [i - n + 1 for i in range(start, T)]


def test_metric_definitions_on_hand_made_weights():
    # a prefix of 2, then a b c d, then a b c d: the induction stripe is i -> i − 3 (n = 4)
    tokens = ["x", "y", "a", "b", "c", "d", "a", "b", "c", "d"]
    T, n = len(tokens), 4
    assert repeat_start(tokens) == 6
    prev = np.zeros((T, T), np.float32)
    prev[0, 0] = 1
    prev[np.arange(1, T), np.arange(T - 1)] = 1                       # every query on the token before it
    assert previous_token_score(prev) == 1.0
    induct = np.eye(T, dtype=np.float32)
    induct[np.arange(6, T)] = 0
    induct[np.arange(6, T), np.arange(6, T) - n + 1] = 1             # "a" (6) -> "b" (3), …, "d" (9) -> the second "a" (6)
    assert induction_score(induct, tokens) == 1.0
    assert previous_token_score(induct) == pytest.approx(0.0)
    assert induction_score(np.eye(T, dtype=np.float32), tokens) == 0.0
    assert induction_score(prev, tokens) == 0.0                        # looking one back is not induction
    half = (prev + induct) / 2                                         # rows still sum to 1
    assert induction_score(half, tokens) == pytest.approx(0.5)
    # per head over a (L, h, T, T) stack; the best heads name their layer and head
    stack = np.stack([np.stack([prev, np.eye(T, dtype=np.float32)]), np.stack([half, induct])])
    assert induction_score(stack, tokens).tolist() == [[0.0, 0.0], [0.5, 1.0]]
    assert best_heads(stack, tokens) == {"previous-token": (0, 0, 1.0), "induction": (1, 1, 1.0)}
    # no repeated token: no induction score
    assert np.isnan(induction_score(prev, list("abcdefghij")))
    assert np.isnan(pattern_score("next_word", prev, tokens))


def test_the_summary_names_a_layer_1_head_only_when_it_is_one():
    from core.train.metrics import best_heads_text
    tokens = ["x", "y", "a", "b", "c", "d", "a", "b", "c", "d"]
    T = len(tokens)
    prev = np.zeros((T, T), np.float32)
    prev[0, 0] = 1
    prev[np.arange(1, T), np.arange(T - 1)] = 1
    induct = np.eye(T, dtype=np.float32)
    induct[np.arange(6, T)] = 0
    induct[np.arange(6, T), np.arange(6, T) - 3] = 1
    eye = np.eye(T, dtype=np.float32)
    circuit = np.stack([np.stack([prev, eye]), np.stack([eye, induct])])       # (2, 2, T, T)
    assert best_heads_text(circuit, tokens, "induction") == (
        "circuit: previous-token head layer 0 head 0 (1.00) -> induction head layer 1 head 1 (1.00)")
    positional = np.stack([np.stack([prev, induct]), np.stack([eye, eye])])    # the stripe in layer 0
    text = best_heads_text(positional, tokens, "induction")
    assert text.startswith("best induction score: layer 0 head 1 (1.00), in layer 0, so by position only")
    assert "layer 1" not in text
    weak = np.stack([np.stack([prev, eye]), np.stack([eye, 0.3 * induct + 0.7 * eye])])
    assert best_heads_text(weak, tokens, "induction") == (
        "no induction head yet (best induction score: layer 1 head 1, 0.30)")
    assert best_heads_text(circuit[:1], tokens, "previous_token") == "best previous-token head: layer 0 head 0 (1.00)"
