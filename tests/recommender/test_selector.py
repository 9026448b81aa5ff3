"""TopKRecommendationSelector: bounds, order, ties, masks, NaN, batches, numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recommender.selector import TopKRecommendationSelector


def test_returns_best_first_per_row() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 1.0, 2.0, 0.0]])
    idx, val = TopKRecommendationSelector(3)(scores)
    assert idx.tolist() == [[1, 3, 2], [0, 2, 1]]
    np.testing.assert_allclose(val, [[0.9, 0.7, 0.5], [3.0, 2.0, 1.0]])


def test_matches_full_sort_on_random_input() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(16, 1000))
    idx, val = TopKRecommendationSelector(25)(scores)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :25]
    assert np.array_equal(idx, expected)
    np.testing.assert_allclose(val, np.take_along_axis(scores, expected, axis=1))


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_rejected(k: int) -> None:
    with pytest.raises(ValueError, match="k"):
        TopKRecommendationSelector(k)


def test_k_above_n_names_k_and_n() -> None:
    with pytest.raises(ValueError, match=r"k=5.*n=4"):
        TopKRecommendationSelector(5)(np.zeros((2, 4)))


def test_k_must_be_an_integer() -> None:
    with pytest.raises(TypeError):
        TopKRecommendationSelector(2.5)  # type: ignore[arg-type]


def test_k_equal_to_n_is_allowed() -> None:
    idx, _ = TopKRecommendationSelector(4)(np.array([1.0, 4.0, 2.0, 3.0]))
    assert idx.tolist() == [1, 3, 2, 0]


def test_ties_break_by_lower_index_first() -> None:
    scores = np.array([0.5, 1.0, 0.5, 1.0, 0.5])
    idx, _ = TopKRecommendationSelector(4)(scores)
    assert idx.tolist() == [1, 3, 0, 2]


def test_ties_straddling_the_kth_position_are_deterministic() -> None:
    scores = np.full(100, 7.0)
    idx, _ = TopKRecommendationSelector(5)(scores)
    assert idx.tolist() == [0, 1, 2, 3, 4]


def test_masked_items_are_never_selected() -> None:
    scores = np.array([[9.0, 8.0, 7.0, 6.0]])
    mask = np.array([[True, False, True, False]])
    idx, val = TopKRecommendationSelector(2)(scores, mask=mask)
    assert idx.tolist() == [[1, 3]]
    np.testing.assert_allclose(val, [[8.0, 6.0]])


def test_nan_scores_are_never_selected() -> None:
    idx, _ = TopKRecommendationSelector(2)(np.array([np.nan, 1.0, np.nan, 0.5]))
    assert idx.tolist() == [1, 3]


def test_fewer_valid_than_k_returns_only_valid_ones_1d() -> None:
    idx, val = TopKRecommendationSelector(3)(
        np.array([np.nan, 1.0, 2.0]), mask=np.array([False, True, False])
    )
    assert idx.tolist() == [2]
    assert val.tolist() == [2.0]


def test_fewer_valid_than_k_in_a_batch_pads_short_rows() -> None:
    scores = np.array([[1.0, 2.0, 3.0], [1.0, np.nan, np.nan]])
    idx, val = TopKRecommendationSelector(2)(scores)
    assert idx.tolist() == [[2, 1], [0, -1]]
    assert np.isnan(val[1, 1])


def test_all_rows_short_truncates_columns() -> None:
    scores = np.array([[1.0, np.nan, np.nan], [np.nan, np.nan, 5.0]])
    idx, _ = TopKRecommendationSelector(3)(scores)
    assert idx.shape == (2, 1)
    assert idx.tolist() == [[0], [2]]


def test_torch_in_torch_out() -> None:
    scores = torch.tensor([[0.2, 0.8, 0.5]], dtype=torch.float32)
    mask = torch.tensor([[False, True, False]])
    idx, val = TopKRecommendationSelector(2)(scores, mask=mask)
    assert isinstance(idx, torch.Tensor) and isinstance(val, torch.Tensor)
    assert idx.tolist() == [[2, 0]]
    assert val.dtype == torch.float32
    assert torch.allclose(val, torch.tensor([[0.5, 0.2]]))


def test_rejects_wrong_rank_and_mask_shape() -> None:
    sel = TopKRecommendationSelector(1)
    with pytest.raises(ValueError, match="shape"):
        sel(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="mask"):
        sel(np.zeros((2, 3)), mask=np.zeros((2, 2), bool))
