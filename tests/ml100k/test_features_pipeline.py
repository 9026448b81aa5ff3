"""The recent-items vector block of the feature assembler, and the training-side helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.features import PAIR_FEATURES, FeatureAssembler
from recommender.model import RECENT_WINDOW_KEY
from training.movielens import load_ml100k
from training.pipeline import TrainConfig, assemble_model, recent_vectors


def _assembler(rng: np.random.Generator, d: int = 3) -> FeatureAssembler:
    n_users, n_items, g = 4, 6, 2
    return FeatureAssembler(
        user_features=np.concatenate([rng.normal(size=(n_users, 2)), rng.normal(size=(n_users, d))], axis=1),
        item_features=np.concatenate([rng.normal(size=(n_items, 1)), rng.normal(size=(n_items, d))], axis=1),
        user_profile=rng.random((n_users, g)),
        item_tags=rng.integers(0, 2, (n_items, g)).astype(np.float32),
        user_feature_names=["a", "b", *(f"recent_vec_{j}" for j in range(d))],
        item_feature_names=["pop", *(f"item_vec_{j}" for j in range(d))],
    )


def test_vector_block_becomes_one_dot_product_feature() -> None:
    rng = np.random.default_rng(0)
    fa = _assembler(rng)
    assert fa.feature_names == ["a", "b", "pop", *PAIR_FEATURES, "recent_similarity"]
    assert fa.n_features == 7
    users = np.array([1, 3])
    cand = np.array([[0, 5, 2], [4, 4, 1]])
    rows = fa.assemble(
        fa.user_features[users], fa.user_profile[users], cand, np.ones((2, 3)), normalise=False
    )
    assert rows.shape == (2, 3, 7)
    for r, u in enumerate(users):
        for c, i in enumerate(cand[r]):
            assert rows[r, c, :2].tolist() == pytest.approx(fa.user_features[u, :2].tolist())
            assert rows[r, c, 2] == pytest.approx(fa.item_features[i, 0])
            assert rows[r, c, 5] == pytest.approx(fa.user_profile[u] @ fa.item_tags[i])
            assert rows[r, c, 6] == pytest.approx(fa.user_features[u, 2:] @ fa.item_features[i, 1:], rel=1e-5)


def test_without_vector_block_layout_is_unchanged() -> None:
    rng = np.random.default_rng(1)
    fa = FeatureAssembler(rng.random((2, 3)), rng.random((4, 2)), rng.random((2, 2)), rng.random((4, 2)))
    assert fa.n_features == 3 + 2 + len(PAIR_FEATURES)
    assert fa.pair_features == PAIR_FEATURES


def test_vector_from_items_is_the_mean_item_vector() -> None:
    fa = _assembler(np.random.default_rng(2))
    assert np.allclose(fa.vector_from_items(np.array([1, 4])), fa.item_features[[1, 4], 1:].mean(axis=0))
    assert fa.vector_from_items(np.array([], dtype=np.int64)).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("user_names", "item_names", "message"),
    [
        (["a", "recent_vec_0", "recent_vec_1", "recent_vec_2", "b"], None, "must be the last columns"),
        (["a", "b", "c", "d", "recent_vec_0"], None, "1 recent_vec_\\* user columns but 3"),
    ],
)
def test_inconsistent_vector_block_is_refused(
    user_names: list[str], item_names: list[str] | None, message: str
) -> None:
    rng = np.random.default_rng(3)
    fa = _assembler(rng)
    with pytest.raises(ValueError, match=message):
        FeatureAssembler(
            fa.user_features,
            fa.item_features,
            fa.user_profile,
            fa.item_tags,
            user_feature_names=user_names,
            item_feature_names=item_names or fa.item_feature_names,
        )


def test_recent_vectors_average_the_latest_items_by_time() -> None:
    item_emb = np.eye(5, dtype=np.float32)
    users = np.array([0, 0, 0, 1, 0])
    items = np.array([0, 1, 2, 3, 4])
    times = np.array([10, 30, 20, 5, 40])
    out = recent_vectors(users, items, times, item_emb, n_users=3, last=2)
    assert out[0].tolist() == pytest.approx([0, 0.5, 0, 0, 0.5])  # items 4 (t=40) and 1 (t=30)
    assert out[1].tolist() == pytest.approx([0, 0, 0, 1, 0])
    assert out[2].tolist() == [0, 0, 0, 0, 0]  # no history


def test_cold_start_block_is_built_like_trainings_for_the_same_history(tiny_ml: Path) -> None:
    """A visitor whose recent items are a trained user's history gets that user's recent block."""
    data = load_ml100k(tiny_ml)
    rng = np.random.default_rng(0)
    dim = 6
    user_emb = rng.normal(size=(data.n_users, dim)).astype(np.float32)
    item_emb = rng.normal(size=(data.n_items, dim)).astype(np.float32)
    config = TrainConfig(recent_items=3)
    model = assemble_model(
        data, data.train_users, data.train_items, user_emb, item_emb, config, "v", data.train_time
    )
    assert model.features.n_vector == dim and model.metadata[RECENT_WINDOW_KEY] == 3
    population = model.features.user_features[:, -dim:].mean(axis=0)
    checked = 0
    for u in range(data.n_users):
        rows = np.flatnonzero(data.train_users == u)
        if len(rows) < 4:
            continue
        history = data.train_items[rows[np.lexsort((rows, data.train_time[rows]))]]  # oldest first
        _, feats, _ = model.cold_start_inputs(history)
        np.testing.assert_allclose(feats[0, -dim:], model.features.user_features[u, -dim:], rtol=1e-6)
        assert not np.allclose(feats[0, -dim:], population, atol=1e-3)
        checked += 1
    assert checked >= 10
