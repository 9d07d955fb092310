"""core.head_scores against attention patterns built by hand, where each score is known exactly."""
import math

import pytest
import torch

from core.head_scores import head_scores, special_masks

# [CLS] w1 w2 w3 w4 [SEP]: rows 1…4 are the words
PIECES = ("[CLS]", "the", "old", "dog", "barked", "[SEP]")
T = len(PIECES)
CLS, SEP = special_masks(PIECES)


def one_hot_rows(targets: list[int]) -> torch.Tensor:
    """(T, T): row i puts all its weight on key targets[i]."""
    a = torch.zeros(T, T, dtype=torch.float64)
    a[torch.arange(T), torch.tensor(targets)] = 1.0
    return a


def test_masks_mark_cls_and_sep():
    assert CLS.tolist() == [True, False, False, False, False, False]
    assert SEP.tolist() == [False, False, False, False, False, True]


def test_a_previous_token_head_scores_one_on_previous_and_zero_entropy():
    # every piece looks at the one before it; row 0 at itself
    a = one_hot_rows([0, 0, 1, 2, 3, 4])
    s = head_scores(a, CLS, SEP)
    assert s.previous.item() == 1.0            # words 2…4: all weight on the word before
    # word 1's previous piece is [CLS]: a quarter of the word rows put everything on [CLS]
    assert s.cls.item() == pytest.approx(0.25, abs=1e-12)
    assert s.sep.item() == 0.0
    assert s.entropy.item() == 0.0
    assert s.max_entropy == pytest.approx(math.log2(6))


def test_a_parked_head_puts_everything_on_cls_and_sep():
    a = torch.zeros(T, T, dtype=torch.float64)
    a[:, 0] = 0.75                             # every row: 3/4 on [CLS], 1/4 on [SEP]
    a[:, -1] = 0.25
    s = head_scores(a, CLS, SEP)
    assert s.cls.item() == pytest.approx(0.75, abs=1e-12)
    assert s.sep.item() == pytest.approx(0.25, abs=1e-12)
    assert s.previous.item() == 0.0
    # two keys with 3/4 and 1/4: the entropy a learner can check by hand
    assert s.entropy.item() == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)), abs=1e-12)


def test_a_uniform_head_has_the_largest_entropy_and_shares_of_one_sixth():
    a = torch.full((T, T), 1.0 / T, dtype=torch.float64)
    s = head_scores(a, CLS, SEP)
    assert s.entropy.item() == pytest.approx(math.log2(T), abs=1e-12)
    for share in (s.previous, s.cls, s.sep):
        assert share.item() == pytest.approx(1.0 / T, abs=1e-12)


def test_only_word_rows_count():
    # [CLS] and [SEP] rows look at the previous piece; the words all look at [SEP]
    a = one_hot_rows([0, 5, 5, 5, 5, 4])
    s = head_scores(a, CLS, SEP)
    assert s.sep.item() == 1.0 and s.cls.item() == 0.0 and s.previous.item() == 0.0


def test_leading_axes_are_kept_one_score_per_head():
    heads = torch.stack([torch.stack([one_hot_rows([0, 0, 1, 2, 3, 4]), one_hot_rows([0, 5, 5, 5, 5, 4])]),
                         torch.stack([torch.full((T, T), 1.0 / T, dtype=torch.float64),
                                      one_hot_rows([1, 2, 3, 4, 5, 5])])])      # (2 layers, 2 heads, T, T)
    s = head_scores(heads, CLS, SEP)
    assert s.previous.shape == (2, 2)
    assert torch.allclose(s.previous, torch.tensor([[1.0, 0.0], [1.0 / T, 0.0]], dtype=torch.float64), atol=1e-12)
    # layer 1 head 1 looks at the next piece: word 4 looks at [SEP]
    assert s.sep[1, 1].item() == pytest.approx(0.25)


def test_masks_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError):
        head_scores(torch.eye(3), CLS, SEP)
