"""The history feature groups (hist: embedding similarity; genre: tag recency) against a plain
loop, and their wiring: served list = offline rows, through the bundle and back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from model_store.bundle import read_bundle, write_bundle
from recommender.features import FeatureAssembler
from recommender.history import (
    GENRE_FEATURES,
    GENRE_HALF_LIFE,
    HIST_FEATURES,
    history_pair_features,
    inverse_norms,
)
from recommender.model import RecommenderModel
from recommender.ranker import DeepFeatureRanking


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_history_features_equal_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(25, 6)).astype(np.float32)
    tags = (rng.uniform(size=(25, 4)) < 0.4).astype(np.float32)
    cand = rng.integers(0, 25, (3, 7))
    histories = [np.array([], np.int64), rng.choice(25, 2, replace=False), rng.choice(25, 9, replace=False)]
    window = 4
    got = history_pair_features(histories, cand, window, emb, inverse_norms(emb), tags)
    assert got.shape == (3, 7, 4)
    assert not got[0].any()  # an empty history: zeros
    for r in (1, 2):
        last = histories[r][-window:]
        weights = [0.5 ** ((len(last) - 1 - j) / GENRE_HALF_LIFE) for j in range(len(last))]
        for c, item in enumerate(cand[r]):
            sims = [_cos(emb[item], emb[h]) for h in last]
            share = [
                sum(tags[item, g] for g in range(4) if tags[h, g] > 0) / max(tags[item].sum(), 1e-12)
                for h in last
            ]
            want = [max(sims), np.mean(sims), np.mean(share), np.dot(share, weights) / sum(weights)]
            np.testing.assert_allclose(got[r, c], want, rtol=1e-5, atol=1e-6)


def test_only_the_last_window_items_count_and_groups_are_optional() -> None:
    emb = np.eye(5, dtype=np.float32)
    cand = np.array([[0, 1]])
    only_hist = history_pair_features([np.array([0, 2, 3])], cand, 2, emb, inverse_norms(emb))
    assert only_hist.shape == (1, 2, 2) and not only_hist.any()  # item 0 fell out of the window
    tags = np.eye(5, dtype=np.float32)
    only_genre = history_pair_features([np.array([2, 1])], cand, 2, item_tags=tags)
    np.testing.assert_allclose(only_genre[0, :, 0], [0.0, 0.5])
    assert not history_pair_features(None, cand, 2, emb, inverse_norms(emb), tags).any()
    with pytest.raises(ValueError, match="histories"):
        history_pair_features([np.array([1])] * 2, cand, 2, emb, inverse_norms(emb))


def _with_history_groups(model: RecommenderModel) -> RecommenderModel:
    f = model.features
    features = FeatureAssembler(
        f.user_features, f.item_features, f.user_profile, f.item_tags, f.user_feature_names,
        f.item_feature_names, history_window=5, hist_similarity=True, genre_recency=True,
        item_vectors=model.item_emb,
    )  # fmt: skip
    assert features.feature_names[-4:] == [*HIST_FEATURES, *GENRE_FEATURES]
    model.features = features
    torch.manual_seed(0)
    model.ranker = DeepFeatureRanking(features.n_features, hidden_units=8).eval()
    return model


def test_served_scores_equal_offline_rows_and_survive_the_bundle(
    make_tiny: Callable[..., RecommenderModel], tmp_path: Path
) -> None:
    model = _with_history_groups(make_tiny())
    users = np.arange(8)
    served = model.recommend(users, 10)
    q = model.user_inputs(users)
    histories = [model.seen(int(u)) for u in users]
    cand, cscore, valid = model.retrieve(q.emb, model.n_candidates, histories)
    rows = model.features.assemble(q.feats, q.profiles, cand, cscore, histories=histories)
    assert np.abs(rows[..., -4:]).sum() > 0  # the history features are live in this test
    with torch.inference_mode():
        offline = model.ranker(torch.from_numpy(rows))[..., 0].numpy()
    for r, rec in enumerate(served):
        order = np.argsort(-np.where(valid[r], offline[r], -np.inf), kind="stable")[:10]
        np.testing.assert_array_equal(rec.items, cand[r][order])
        np.testing.assert_allclose(rec.scores, offline[r][order], rtol=1e-5, atol=1e-5)
    write_bundle(model, tmp_path / "b")
    loaded, _ = read_bundle(tmp_path / "b")
    lf = loaded.features
    assert (lf.history_window, lf.hist_similarity, lf.genre_recency) == (5, True, True)
    for a, b in zip(loaded.recommend(users, 10), served, strict=True):
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)


def test_the_groups_refuse_missing_inputs(make_tiny: Callable[..., RecommenderModel]) -> None:
    f = make_tiny().features
    base = (
        f.user_features,
        f.item_features,
        f.user_profile,
        f.item_tags,
        f.user_feature_names,
        f.item_feature_names,
    )
    with pytest.raises(ValueError, match="item_vectors"):
        FeatureAssembler(*base, history_window=3, hist_similarity=True)
    with pytest.raises(ValueError, match="history_window"):
        FeatureAssembler(*base, history_window=0, genre_recency=True)
