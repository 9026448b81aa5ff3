"""FeatureAssembler: layout, pair features, normalisation, and identity of train/serve rows."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.features import PAIR_FEATURES, FeatureAssembler


def _assembler() -> FeatureAssembler:
    return FeatureAssembler(
        user_features=np.array([[1.0, 0.0], [0.0, 1.0]]),
        item_features=np.array([[10.0], [20.0], [30.0]]),
        user_profile=np.array([[1.0, 0.0], [0.5, 0.5]]),
        item_tags=np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
    )


def test_layout_is_user_then_item_then_pair_features() -> None:
    fa = _assembler()
    rows = fa.assemble(
        fa.user_features[[1]],
        fa.user_profile[[1]],
        np.array([[2, 0]]),
        np.array([[0.9, 0.4]]),
        normalise=False,
    )
    assert rows.shape == (1, 2, fa.n_features) == (1, 2, 2 + 1 + len(PAIR_FEATURES))
    # user 1 features, item 2 features, retrieval score, rank position, tag affinity (0.5*1 + 0.5*1)
    np.testing.assert_allclose(rows[0, 0], [0.0, 1.0, 30.0, 0.9, 0.0, 1.0])
    np.testing.assert_allclose(rows[0, 1], [0.0, 1.0, 10.0, 0.4, 0.5, 0.5])
    assert fa.feature_names[-3:] == list(PAIR_FEATURES)


def test_normalisation_standardises_training_rows() -> None:
    fa = _assembler()
    rng = np.random.default_rng(0)
    cand = rng.integers(0, 3, size=(2, 3))
    scores = rng.normal(size=(2, 3))
    raw = fa.assemble(fa.user_features, fa.user_profile, cand, scores, normalise=False)
    fa.fit_normalisation(raw)
    normed = fa.assemble(fa.user_features, fa.user_profile, cand, scores)
    flat = normed.reshape(-1, fa.n_features)
    np.testing.assert_allclose(flat.mean(axis=0), 0.0, atol=1e-5)
    assert np.all((np.abs(flat.std(axis=0) - 1.0) < 1e-4) | (flat.std(axis=0) < 1e-6))


def test_profile_from_items_is_a_normalised_tag_distribution() -> None:
    fa = _assembler()
    np.testing.assert_allclose(fa.profile_from_items(np.array([0, 2])), [2 / 3, 1 / 3])
    np.testing.assert_allclose(fa.profile_from_items(np.array([], dtype=np.int64)), [0.0, 0.0])


def test_mismatched_tables_are_rejected() -> None:
    with pytest.raises(ValueError, match="tags"):
        FeatureAssembler(np.zeros((2, 1)), np.zeros((3, 1)), np.zeros((2, 2)), np.zeros((3, 4)))
    fa = _assembler()
    with pytest.raises(ValueError, match="entries"):
        fa.set_normalisation(np.zeros(2), np.ones(2))


def test_training_and_serving_rows_are_identical(trained) -> None:
    """The ranker input the service builds is exactly the one the trainer would build."""
    model, _ = trained
    users = np.array([0, 1, 2])
    emb, feats, profiles = model.user_inputs(users)
    cand, cscore, _ = model.retrieve(emb, model.n_candidates, [model.seen(int(u)) for u in users])
    offline = (
        model.features.assemble(feats, profiles, cand, cscore, normalise=False) - model.features.mean
    ) / model.features.std
    served = model.features.assemble(feats, profiles, cand, cscore)
    np.testing.assert_allclose(served, offline, rtol=1e-5, atol=1e-5)
