"""Stage 2 on its own: the ranker over assembled features, or the retrieval score unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recommender.model import RecommenderModel
from recommender.ranker import DeepFeatureRanking
from recommender.ranking import FeatureRanking, RetrievalScoreRanking


def _inputs(tiny: RecommenderModel) -> tuple[np.ndarray, ...]:
    users = np.array([1, 2, 3])
    emb, feats, profiles = tiny.stages.queries.known(users)
    cand, cscore, _ = tiny.stages.retriever.retrieve(emb, 20)
    return feats, profiles, cand, cscore


def test_retrieval_score_ranking_keeps_the_retrieval_score(tiny: RecommenderModel) -> None:
    feats, profiles, cand, cscore = _inputs(tiny)
    assert RetrievalScoreRanking().score(feats, profiles, cand, cscore) is cscore


def test_feature_ranking_scores_assembled_rows_with_the_ranker(tiny: RecommenderModel) -> None:
    feats, profiles, cand, cscore = _inputs(tiny)
    stage = tiny.stages.ranking
    assert isinstance(stage, FeatureRanking)
    timings: dict[str, float] = {}
    got = stage.score(feats, profiles, cand, cscore, timings)
    rows = tiny.features.assemble(feats, profiles, cand, cscore)
    with torch.inference_mode():
        want = tiny.ranker(torch.from_numpy(rows))[..., 0].numpy()
    assert got.shape == cand.shape
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert set(timings) == {"features", "ranking"}


def test_a_ranker_that_does_not_fit_the_features_is_refused(tiny: RecommenderModel) -> None:
    with pytest.raises(ValueError, match="ranker expects 5 features"):
        FeatureRanking(tiny.features, DeepFeatureRanking(5))


def test_the_ranker_runs_in_eval_mode(tiny: RecommenderModel) -> None:
    tower = DeepFeatureRanking(tiny.features.n_features).train()
    FeatureRanking(tiny.features, tower)
    assert not tower.training
