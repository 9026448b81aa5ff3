"""The one strategy interface: every strategy keeps the same promises.

Each test runs against personalized and recent-items (ranked by the ranker and by the retrieval
score alone), popularity and similar items, on the tiny hand-built model of ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from recommender.filters import ItemFilter
from recommender.model import RecommenderModel
from recommender.strategies import Strategy
from recommender.types import Recommendations


@dataclass
class Case:
    """A strategy, a batch of its subjects, and each subject's own items (what exclude_seen drops)."""

    strategy: Strategy
    subjects: Any
    own: list[np.ndarray]

    def one(self, r: int) -> Any:
        return self.subjects[r : r + 1]


def _personalized(m: RecommenderModel, ranked: bool) -> Case:
    users = np.array([0, 5, 17, 39])
    s = m.strategies if ranked else m.retrieval_strategies
    return Case(s.personalized, users, [m.seen(int(u)) for u in users])


def _recent(m: RecommenderModel, ranked: bool) -> Case:
    lists = [np.array([3, 8, 20]), np.array([50]), np.array([7, 99, 120, 140]), np.array([7, 7, 1])]
    s = m.strategies if ranked else m.retrieval_strategies
    return Case(s.recent_items, lists, lists)


def _popularity(m: RecommenderModel, ranked: bool) -> Case:
    order = np.argsort(-m.popularity, kind="stable")
    lists = [np.zeros(0, np.int64), m.seen(2), order[:3], np.zeros(0, np.int64)]
    return Case(m.strategies.popularity, lists, lists)


def _similar(m: RecommenderModel, ranked: bool) -> Case:
    items = np.array([0, 42, 149, 77])
    return Case(m.strategies.similar_items, items, [np.array([i]) for i in items])


CASES: dict[str, Callable[[RecommenderModel], Case]] = {
    "personalized": lambda m: _personalized(m, True),
    "personalized-retrieval-only": lambda m: _personalized(m, False),
    "recent_items": lambda m: _recent(m, True),
    "recent_items-retrieval-only": lambda m: _recent(m, False),
    "popularity": lambda m: _popularity(m, True),
    "similar_items": lambda m: _similar(m, True),
}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, tiny: RecommenderModel) -> Case:
    return CASES[request.param](tiny)


def _check_list(rec: Recommendations, k: int) -> None:
    assert rec.items.ndim == 1 and rec.items.dtype == np.int64
    assert rec.scores.dtype == np.float32
    assert len(rec.items) == len(rec.scores) == len(rec.retrieval_scores) <= k
    assert len(set(rec.items.tolist())) == len(rec.items)  # no item twice


def test_one_best_first_list_per_subject(case: Case) -> None:
    recs = case.strategy.recommend(case.subjects, 10)
    assert len(recs) == len(case.own)
    for rec in recs:
        _check_list(rec, 10)
        assert len(rec.items) == 10
        assert np.all(np.diff(rec.scores) <= 0)


def test_own_items_and_excluded_items_never_come_back(case: Case, tiny: RecommenderModel) -> None:
    excluded = np.array([1, 2, 3, 60])
    for rec, own in zip(
        case.strategy.recommend(case.subjects, 12, exclude_items=excluded), case.own, strict=True
    ):
        assert not set(rec.items.tolist()) & (set(own.tolist()) | set(excluded.tolist()))
        assert len(rec.items) == 12


def test_exclude_seen_off_keeps_own_items_eligible(case: Case, tiny: RecommenderModel) -> None:
    recs = case.strategy.recommend(case.subjects, tiny.n_items, exclude_seen=False)
    assert all(len(rec.items) == tiny.n_items for rec in recs)


def test_k_below_one_is_refused(case: Case) -> None:
    for k in (0, -3):
        with pytest.raises(ValueError, match="k must be"):
            case.strategy.recommend(case.subjects, k)


def test_k_beyond_the_catalogue_returns_everything_that_qualifies(case: Case, tiny: RecommenderModel) -> None:
    excluded = np.array([10, 11])
    recs = case.strategy.recommend(case.subjects, tiny.n_items + 40, exclude_items=excluded)
    for rec, own in zip(recs, case.own, strict=True):
        _check_list(rec, tiny.n_items)
        qualifying = set(range(tiny.n_items)) - set(own.tolist()) - set(excluded.tolist())
        assert set(rec.items.tolist()) == qualifying


def test_filter_is_honoured_and_short_lists_hold_all_that_qualify(case: Case, tiny: RecommenderModel) -> None:
    allowed = tiny.filter_mask(ItemFilter(include={"category": ["cat1"]}))
    assert allowed is not None
    k = int(allowed.sum()) + 5  # more than can qualify: the answer is exactly the qualifying set
    for rec, own in zip(case.strategy.recommend(case.subjects, k, allowed=allowed), case.own, strict=True):
        qualifying = set(np.flatnonzero(allowed).tolist()) - set(own.tolist())
        assert set(rec.items.tolist()) == qualifying
    for rec in case.strategy.recommend(case.subjects, 5, allowed=allowed):
        assert len(rec.items) == 5 and allowed[rec.items].all()
    nothing = np.zeros(tiny.n_items, bool)
    assert all(len(r.items) == 0 for r in case.strategy.recommend(case.subjects, 5, allowed=nothing))


def test_a_batch_answers_like_one_subject_at_a_time(case: Case, tiny: RecommenderModel) -> None:
    allowed = np.ones(tiny.n_items, bool)
    allowed[::7] = False
    batch = case.strategy.recommend(case.subjects, 8, allowed=allowed, exclude_items=np.array([4]))
    for r, rec in enumerate(batch):
        single = case.strategy.recommend(case.one(r), 8, allowed=allowed, exclude_items=np.array([4]))[0]
        assert rec.items.tolist() == single.items.tolist()
        np.testing.assert_allclose(rec.scores, single.scores, rtol=1e-5, atol=1e-6)


def test_diversity_keeps_every_rule(case: Case, tiny: RecommenderModel) -> None:
    allowed = tiny.filter_mask(ItemFilter(exclude={"category": ["cat0"]}))
    plain = case.strategy.recommend(case.subjects, 6, allowed=allowed)
    diverse = case.strategy.recommend(case.subjects, 6, allowed=allowed, diversity=0.8, n_candidates=40)
    for p, d, own in zip(plain, diverse, case.own, strict=True):
        _check_list(d, 6)
        assert len(d.items) == 6 and allowed[d.items].all()
        assert not set(d.items.tolist()) & set(own.tolist())
        assert d.items[0] == p.items[0]  # MMR's first pick is always the most relevant item


def test_empty_batch_and_timings(case: Case) -> None:
    assert case.strategy.recommend(case.subjects[:0], 5) == []
    timings: dict[str, float] = {}
    case.strategy.recommend(case.subjects, 5, timings=timings)
    assert timings and all(v >= 0 for v in timings.values())
