"""The default runs learn their task's pattern (seeded, CPU; a few seconds each)."""
import math

import numpy as np

from core.train.metrics import induction_score, previous_token_score


def test_previous_token_is_learned(previous_token_run):
    last = previous_token_run.snapshots[-1]
    assert last.accuracy >= 0.95
    head_scores = previous_token_score(last.attn_weights[0])          # (h,) of the only layer
    assert head_scores.max() >= 0.9
    assert np.allclose(last.scores[0], head_scores)
    # and it was learned: at step 0 the weights are near uniform over the visible keys
    assert previous_token_run.snapshots[0].scores.max() < 0.5


def test_induction_is_learned(induction_run):
    s = induction_run.settings
    first, last = induction_run.snapshots[0], induction_run.snapshots[-1]
    assert last.loss_second < 0.2 * first.loss_second
    # the first half's tokens are uniformly random: no model beats ln(vocab) there on average;
    # an overconfident one does somewhat worse, hence a margin of 0.5 nats either side
    assert abs(last.loss_first - math.log(s.vocab_size)) < 0.5
    assert abs(first.loss_first - math.log(s.vocab_size)) < 0.5
    layer2 = induction_score(last.attn_weights[1], s.seq_len)          # second layer's heads, (h,)
    assert layer2.max() >= 0.5
    assert np.allclose(last.scores[1], layer2)


def test_metric_definitions_on_hand_made_weights():
    T, n = 8, 4
    prev = np.zeros((T, T), np.float32)
    prev[0, 0] = 1
    prev[np.arange(1, T), np.arange(T - 1)] = 1                       # every query on the token before it
    assert previous_token_score(prev) == 1.0
    induct = np.eye(T, dtype=np.float32)
    induct[np.arange(n, 2 * n)] = 0
    induct[np.arange(n, 2 * n), np.arange(1, n + 1)] = 1              # i -> i − n + 1
    assert induction_score(induct, n) == 1.0
    assert induction_score(np.eye(T, dtype=np.float32), n) == 0.0
