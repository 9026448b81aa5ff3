"""Pure pieces: attribute filter masks, MMR re-ranking, most-similar-history explanations."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.diversity import mmr_order, most_similar
from recommender.filters import AttributeIndex, ItemFilter, UnknownAttribute

ATTRS = {
    "genre": [["rock"], ["jazz"], ["rock", "jazz"], ["pop"], []],
    "format": [["cd"], ["vinyl"], ["cd"], ["cd"], ["vinyl"]],
}


def test_no_filter_allows_everything() -> None:
    index = AttributeIndex(ATTRS, 5)
    assert index.mask(None) is None
    assert index.mask(ItemFilter()) is None


def test_include_ors_values_and_ands_attributes() -> None:
    index = AttributeIndex(ATTRS, 5)
    mask = index.mask(ItemFilter(include={"genre": ["rock", "pop"], "format": ["cd"]}))
    assert np.flatnonzero(mask).tolist() == [0, 2, 3]


def test_exclude_drops_any_item_with_a_listed_value() -> None:
    index = AttributeIndex(ATTRS, 5)
    mask = index.mask(ItemFilter(exclude={"genre": ["jazz"]}))
    assert np.flatnonzero(mask).tolist() == [0, 3, 4]
    both = index.mask(ItemFilter(include={"format": ["cd"]}, exclude={"genre": ["jazz"]}))
    assert np.flatnonzero(both).tolist() == [0, 3]


def test_unknown_value_matches_nothing_but_unknown_attribute_is_an_error() -> None:
    index = AttributeIndex(ATTRS, 5)
    assert not index.mask(ItemFilter(include={"genre": ["polka"]})).any()
    with pytest.raises(UnknownAttribute, match="gnre") as info:
        index.mask(ItemFilter(exclude={"gnre": ["rock"]}))
    assert info.value.side == "exclude"
    assert "format" in str(info.value) and "genre" in str(info.value)


def test_attribute_rows_must_match_catalogue() -> None:
    with pytest.raises(ValueError, match="genre"):
        AttributeIndex({"genre": [["a"]]}, 3)


def test_mmr_zero_diversity_is_relevance_order_with_index_ties() -> None:
    rel = np.array([0.1, 0.9, 0.5, 0.9])
    emb = np.random.default_rng(0).normal(size=(4, 3))
    assert mmr_order(rel, emb, 4, 0.0).tolist() == [1, 3, 2, 0]
    assert mmr_order(rel, emb, 2, 0.0).tolist() == [1, 3]


def test_mmr_prefers_a_different_item_over_a_near_duplicate() -> None:
    # Items 0 and 1 are near-duplicates and the two most relevant; item 2 points elsewhere.
    emb = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0]])
    rel = np.array([1.0, 0.95, 0.6])
    assert mmr_order(rel, emb, 2, 0.0).tolist() == [0, 1]
    assert mmr_order(rel, emb, 2, 0.5).tolist() == [0, 2]
    # The first pick is always the most relevant, however strong the diversity.
    assert mmr_order(rel, emb, 3, 1.0)[0] == 0


def test_mmr_more_diversity_lowers_list_similarity() -> None:
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(60, 8))
    rel = rng.normal(size=60)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def mean_pairwise(order: np.ndarray) -> float:
        s = unit[order] @ unit[order].T
        return float(s[np.triu_indices(len(order), 1)].mean())

    plain, diverse = mmr_order(rel, emb, 10, 0.0), mmr_order(rel, emb, 10, 0.8)
    assert len(set(diverse.tolist())) == 10
    assert mean_pairwise(diverse) < mean_pairwise(plain)


def test_mmr_bounds() -> None:
    assert mmr_order(np.array([1.0, 2.0]), np.eye(2), 5, 0.3).tolist() == [1, 0]
    assert mmr_order(np.zeros(0), np.zeros((0, 2)), 3, 0.5).tolist() == []
    with pytest.raises(ValueError, match="diversity"):
        mmr_order(np.ones(2), np.eye(2), 1, 1.5)


def test_most_similar_skips_the_item_itself() -> None:
    emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    pos, sims = most_similar(np.array([0, 2]), np.array([0, 3]), emb)
    assert pos.tolist() == [1, 1]  # item 0's own entry skipped → history[1] = item 3
    assert sims[1] == pytest.approx(0.9 / np.sqrt(0.82))
    pos, sims = most_similar(np.array([0]), np.array([0]), emb)
    assert pos.tolist() == [-1] and np.isnan(sims[0])
