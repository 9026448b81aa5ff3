"""The co-occurrence features: the vectorised lookup against a plain loop, and their wiring."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from model_store.bundle import read_bundle, write_bundle
from recommender.cooc import COOC_FEATURES, cooc_pair_features
from recommender.features import FeatureAssembler
from recommender.model import RecommenderModel
from recommender.ranker import DeepFeatureRanking


def _tables(n_items: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    nb = np.stack([rng.choice(n_items, m, replace=False) for _ in range(n_items)]).astype(np.int32)
    nb[rng.uniform(size=nb.shape) < 0.3] = -1  # empty slots, as for items with few partners
    return nb, np.where(nb >= 0, rng.uniform(size=nb.shape), 0).astype(np.float32)


def test_lookup_equals_a_plain_loop() -> None:
    nb, w = _tables(30, 5)
    rng = np.random.default_rng(1)
    cand = rng.integers(0, 30, (4, 12))
    histories = [rng.choice(30, n, replace=False) for n in (0, 1, 7, 29)]
    got = cooc_pair_features(nb, w, histories, cand)
    for r, h in enumerate(histories):
        for c, item in enumerate(cand[r]):
            hits = [w[item, j] for j in range(5) if nb[item, j] >= 0 and nb[item, j] in set(h.tolist())]
            filled = max(1, int((nb[item] >= 0).sum()))
            want = [sum(hits) / max(1, len(h)), max(hits, default=0.0), len(hits) / filled]
            np.testing.assert_allclose(got[r, c], want, rtol=1e-6)
    assert got.shape == (4, 12, len(COOC_FEATURES))


def test_empty_slots_never_match_the_previous_rows_last_item() -> None:
    """-1 marks an empty slot; it must never count as a history item (not even item n-1)."""
    nb = np.full((3, 2), -1, np.int32)
    w = np.ones((3, 2), np.float32)
    got = cooc_pair_features(nb, w, [np.array([2]), np.array([0])], np.array([[0], [1]]))
    assert not got.any()


def test_unknown_history_gives_zeros_and_a_wrong_count_is_refused() -> None:
    nb, w = _tables(10, 3)
    assert not cooc_pair_features(nb, w, None, np.zeros((2, 4), np.int64)).any()
    with pytest.raises(ValueError, match="histories"):
        cooc_pair_features(nb, w, [np.array([1])], np.zeros((2, 4), np.int64))


def test_assembler_appends_the_group_and_checks_the_tables() -> None:
    nb, w = _tables(6, 3)
    base = dict(
        user_features=np.ones((2, 1)), item_features=np.arange(6.0)[:, None],
        user_profile=np.ones((2, 2)), item_tags=np.ones((6, 2)),
    )  # fmt: skip
    fa = FeatureAssembler(**base, cooc_neighbours=nb, cooc_weights=w)
    assert fa.feature_names[-3:] == list(COOC_FEATURES) and fa.n_features == 1 + 1 + 3 + 3
    cand = np.array([[0, 3, 5]])
    hist = [np.array([1, 2, 4])]
    rows = fa.assemble(np.ones((1, 1)), np.ones((1, 2)), cand, np.zeros((1, 3)), histories=hist)
    np.testing.assert_allclose(rows[..., -3:], cooc_pair_features(nb, w, hist, cand))
    with pytest.raises(ValueError, match="rows"):
        FeatureAssembler(**base, cooc_neighbours=nb[:5], cooc_weights=w[:5])
    with pytest.raises(ValueError, match="together"):
        FeatureAssembler(**base, cooc_neighbours=nb)


def _with_cooc(model: RecommenderModel) -> RecommenderModel:
    f = model.features
    nb, w = _tables(model.n_items, 6)
    features = FeatureAssembler(
        f.user_features, f.item_features, f.user_profile, f.item_tags,
        f.user_feature_names, f.item_feature_names, cooc_neighbours=nb, cooc_weights=w,
    )  # fmt: skip
    model.features = features
    model.ranker = DeepFeatureRanking(features.n_features, hidden_units=8).eval()
    return model


def test_served_lists_use_the_history_and_survive_the_bundle(
    make_tiny: Callable[..., RecommenderModel], tmp_path: Path
) -> None:
    model = _with_cooc(make_tiny())
    users = np.arange(6)
    served = model.recommend(users, 10)
    # offline: the rows training builds (history = training items), scored by the same tower
    q = model.user_inputs(users)
    cand, cscore, valid = model.retrieve(q.emb, model.n_candidates, [model.seen(int(u)) for u in users])
    rows = model.features.assemble(
        q.feats, q.profiles, cand, cscore, histories=[model.seen(int(u)) for u in users]
    )
    assert np.abs(rows[..., -1]).sum() > 0  # the history features are live in this test
    import torch

    with torch.inference_mode():
        offline = model.ranker(torch.from_numpy(rows))[..., 0].numpy()
    for r, rec in enumerate(served):
        want = cand[r][np.argsort(-np.where(valid[r], offline[r], -np.inf), kind="stable")][:10]
        np.testing.assert_array_equal(rec.items, want)
    write_bundle(model, tmp_path / "b")
    loaded, _ = read_bundle(tmp_path / "b")
    assert loaded.features.has_cooc
    np.testing.assert_array_equal(loaded.features.cooc_neighbours, model.features.cooc_neighbours)
    for a, b in zip(loaded.recommend(users, 10), served, strict=True):
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)


def test_a_bundle_without_the_group_still_loads_and_serves(
    make_tiny: Callable[..., RecommenderModel], tmp_path: Path
) -> None:
    model = make_tiny()
    write_bundle(model, tmp_path / "old")
    loaded, _ = read_bundle(tmp_path / "old")
    assert not loaded.features.has_cooc
    for a, b in zip(loaded.recommend(np.arange(4), 5), model.recommend(np.arange(4), 5), strict=True):
        np.testing.assert_array_equal(a.items, b.items)
