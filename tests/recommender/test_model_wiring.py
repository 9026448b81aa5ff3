"""The model wires the stages from its fields; its old methods are thin delegates to them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from model_store import LocalStore
from recommender.filters import ItemFilter
from recommender.model import RecommenderModel
from recommender.ranking import FeatureRanking, RetrievalScoreRanking


def test_similar_items_batch_equals_similar_row_by_row(tiny: RecommenderModel) -> None:
    items = np.arange(0, tiny.n_items, 11)
    allowed = tiny.filter_mask(ItemFilter(exclude={"category": ["cat2"]}))
    for kwargs in ({}, {"exclude_items": np.array([5, 6, 7])}, {"allowed": allowed}):
        batch = tiny.similar_items(items, 9, **kwargs)
        assert len(batch) == len(items)
        for item, rec in zip(items.tolist(), batch, strict=True):
            one = tiny.similar(item, 9, **kwargs)
            assert rec.items.tolist() == one.items.tolist()
            np.testing.assert_array_equal(rec.scores, one.scores)


def test_delegates_answer_like_the_strategies(tiny: RecommenderModel) -> None:
    users = np.array([2, 8])
    s = tiny.strategies
    for a, b in zip(tiny.recommend(users, 7), s.personalized.recommend(users, 7), strict=True):
        assert a.items.tolist() == b.items.tolist()
    items = np.array([3, 4])
    assert (
        tiny.recommend_items(items, 5).items.tolist()
        == s.recent_items.recommend([items], 5)[0].items.tolist()
    )
    assert tiny.popular(5).items.tolist() == s.popularity.recommend([np.zeros(0)], 5)[0].items.tolist()


def test_retrieval_only_is_a_separate_object_and_the_model_keeps_its_ranker(tiny: RecommenderModel) -> None:
    ranker = tiny.ranker
    plain = tiny.retrieval_strategies.personalized.recommend(np.array([4]), 10)[0]
    assert tiny.ranker is ranker and isinstance(tiny.stages.ranking, FeatureRanking)
    assert isinstance(tiny.retrieval_strategies.personalized.pipeline.ranking, RetrievalScoreRanking)
    np.testing.assert_array_equal(plain.scores, plain.retrieval_scores)  # ranked by stage 1's score
    assert np.all(np.diff(plain.retrieval_scores) <= 0)


def test_reassigning_a_field_rebuilds_the_stages(make_tiny: Callable[..., RecommenderModel]) -> None:
    model = make_tiny()
    stages = model.stages
    model.n_candidates = 30  # the same value: nothing to rebuild
    assert model.stages is stages
    model.n_candidates = 100  # what the service does with RECSERVE_N_CANDIDATES
    assert model.stages is not stages and model.stages.strategies.personalized.pipeline.n_candidates == 100
    assert len(model.recommend(np.array([0]), 5)[0].items) == 5
    model.ranker = None  # a model without a ranker ranks by the retrieval score
    assert isinstance(model.stages.ranking, RetrievalScoreRanking)


def test_bundle_round_trip_keeps_the_recent_window(
    make_tiny: Callable[..., RecommenderModel], tmp_path: Path
) -> None:
    model = make_tiny()
    LocalStore(tmp_path).publish(model)
    loaded, _ = LocalStore(tmp_path).load()
    items = model.seen(6)
    for a, b in zip(model.cold_start_inputs(items), loaded.cold_start_inputs(items), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.recommend_items(items, 10).items.tolist() == model.recommend_items(items, 10).items.tolist()
