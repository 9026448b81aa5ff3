"""Stage 1 on its own: filtered search, exclusions, the exact fallback and the beam policy."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.candidates import CandidateRetriever, merge_exclusions
from recommender.model import RecommenderModel
from recommender.retrieval import ItemIndex


@pytest.fixture(scope="module")
def retriever(tiny: RecommenderModel) -> CandidateRetriever:
    return tiny.stages.retriever


def _brute(tiny: RecommenderModel, q: np.ndarray, pool: np.ndarray, n: int) -> list[int]:
    return pool[np.argsort(-(tiny.item_emb[pool] @ q), kind="stable")[:n]].tolist()


def test_merge_exclusions_joins_per_row_and_shared_lists() -> None:
    assert merge_exclusions([None, None], None) is None
    assert merge_exclusions([None, None], np.zeros(0, np.int64)) is None
    out = merge_exclusions([np.array([1, 2]), None, np.zeros(0, np.int64)], np.array([9]))
    assert [o.tolist() for o in out] == [[1, 2, 9], [9], [9]]
    out = merge_exclusions([np.array([4]), None], None)
    assert [o.tolist() for o in out] == [[4], []]


def test_unfiltered_search_is_the_exact_top_minus_exclusions(tiny: RecommenderModel) -> None:
    flat = CandidateRetriever(tiny.item_emb, ItemIndex.build(tiny.item_emb, "flat"))
    q = tiny.user_emb[:3]
    excl = [np.array([5, 6]), np.zeros(0, np.int64), np.arange(0, 150, 2)]
    cand, scores, valid = flat.retrieve(q, 12, excl)
    assert cand.shape == scores.shape == valid.shape == (3, 12) and valid.all()
    for r in range(3):
        pool = np.setdiff1d(np.arange(tiny.n_items), excl[r])
        assert cand[r].tolist() == _brute(tiny, q[r], pool, 12)
        np.testing.assert_allclose(scores[r], tiny.item_emb[cand[r]] @ q[r], rtol=1e-5)


def test_a_small_filter_pool_is_scanned_exactly(
    retriever: CandidateRetriever, tiny: RecommenderModel
) -> None:
    allowed = np.zeros(tiny.n_items, bool)
    allowed[[3, 30, 60, 90, 120, 149]] = True  # 6 of 150 items: over-fetching would need them all
    q = tiny.user_emb[7:8]
    cand, _, valid = retriever.retrieve(q, 4, [np.array([60])], allowed)
    assert valid.all()
    assert cand[0].tolist() == _brute(tiny, q[0], np.array([3, 30, 90, 120, 149]), 4)


def test_rows_short_of_n_are_padded_and_marked_invalid(
    retriever: CandidateRetriever, tiny: RecommenderModel
) -> None:
    allowed = np.zeros(tiny.n_items, bool)
    allowed[[10, 20, 30]] = True
    cand, scores, valid = retriever.retrieve(tiny.user_emb[:2], 5, None, allowed)
    assert valid.sum(axis=1).tolist() == [3, 3]
    assert (cand[~valid] == 0).all() and (scores[~valid] == 0).all()
    assert set(cand[0, :3].tolist()) == {10, 20, 30}


def test_similar_beam_is_narrow_but_never_below_n_nor_above_the_bundle(tiny: RecommenderModel) -> None:
    r = CandidateRetriever(tiny.item_emb, tiny.index, similar_ef_search=16)
    bundle = tiny.index.ef_search
    assert bundle == 64
    assert r.similar_ef(2) == 16  # the floor
    assert r.similar_ef(11) == 44  # 4 × n
    assert r.similar_ef(30) == 64  # capped at the bundle's beam
    assert r.similar_ef(80) == 80  # but never fewer than the results asked for
    flat = CandidateRetriever(tiny.item_emb, ItemIndex.build(tiny.item_emb, "flat"))
    assert flat.similar_ef(11) is None  # an exact index has no beam
