"""Request options on the in-memory model: filters, exclusions, cold start, popularity, MMR, batch."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.filters import ItemFilter
from recommender.model import RecommenderModel


@pytest.fixture(scope="module")
def model(trained: tuple[RecommenderModel, dict]) -> RecommenderModel:
    return trained[0]


def _category(model: RecommenderModel, item: int) -> list[str]:
    return model.item_attributes["category"][item]


def test_filter_keeps_only_matching_items_and_fills_k(model: RecommenderModel) -> None:
    allowed = model.filter_mask(ItemFilter(include={"category": ["cat1", "cat2"]}))
    assert allowed is not None and allowed.sum() > 20
    rec = model.recommend(np.array([0, 1, 2]), 10, allowed=allowed)
    for r in rec:
        assert len(r.items) == 10
        assert all(set(_category(model, int(i))) & {"cat1", "cat2"} for i in r.items)


def test_filtered_retrieval_is_the_best_of_the_allowed_items(model: RecommenderModel) -> None:
    allowed = model.filter_mask(ItemFilter(exclude={"category": ["cat0", "cat3"]}))
    q = model.user_emb[5:6]
    cand, scores, valid = model.retrieve(q, 15, allowed=allowed)
    pool = np.flatnonzero(allowed)
    exact = pool[np.argsort(-(model.item_emb[pool] @ q[0]), kind="stable")[:15]]
    assert valid.all()
    assert set(cand[0].tolist()) == set(exact.tolist())
    assert np.all(np.diff(scores[0]) <= 1e-6)


def test_filter_leaving_fewer_than_k_returns_all_that_qualify(model: RecommenderModel) -> None:
    user = 3
    allowed = model.filter_mask(ItemFilter(include={"category": ["cat4"]}))
    qualifying = set(np.flatnonzero(allowed).tolist()) - set(model.seen(user).tolist())
    rec = model.recommend(np.array([user]), len(qualifying) + 25, allowed=allowed)[0]
    assert set(rec.items.tolist()) == qualifying


def test_unknown_filter_value_yields_nothing(model: RecommenderModel) -> None:
    allowed = model.filter_mask(ItemFilter(include={"category": ["no-such-category"]}))
    assert len(model.recommend(np.array([0]), 5, allowed=allowed)[0].items) == 0
    assert len(model.popular(5, allowed=allowed).items) == 0


def test_exclusions_and_seen_items_never_returned(model: RecommenderModel) -> None:
    user = 7
    first = model.recommend(np.array([user]), 10)[0].items
    assert not set(first.tolist()) & set(model.seen(user).tolist())
    again = model.recommend(np.array([user]), 10, exclude_items=first[:5])[0].items
    assert not set(again.tolist()) & set(first[:5].tolist())
    assert set(first[5:].tolist()) <= set(again.tolist())
    with_seen = model.recommend(np.array([user]), 10, exclude_seen=False)[0].items
    assert set(with_seen.tolist()) & set(model.seen(user).tolist())


def test_batch_equals_one_by_one(model: RecommenderModel) -> None:
    users = np.array([0, 11, 42, 99])
    allowed = model.filter_mask(ItemFilter(exclude={"category": ["cat5"]}))
    batch = model.recommend(users, 8, allowed=allowed, exclude_items=np.array([1, 2, 3]))
    for u, b in zip(users.tolist(), batch, strict=True):
        single = model.recommend(np.array([u]), 8, allowed=allowed, exclude_items=np.array([1, 2, 3]))[0]
        assert b.items.tolist() == single.items.tolist()
        np.testing.assert_allclose(b.scores, single.scores, rtol=1e-5, atol=1e-6)


def test_cold_start_inputs_are_item_centroid_and_mean_user(model: RecommenderModel) -> None:
    items = np.array([4, 9, 17])
    emb, feats, profile = model.cold_start_inputs(items)
    np.testing.assert_allclose(emb[0], model.item_emb[items].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(feats[0], model.features.user_features.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(profile[0], model.features.profile_from_items(items))


def test_cold_start_from_items_excludes_them_and_follows_their_taste(model: RecommenderModel) -> None:
    cats = np.array([_category(model, i)[0] for i in range(model.n_items)])
    recent = np.flatnonzero(cats == "cat2")[:5]
    rec = model.recommend_items(recent, 10)
    assert len(rec.items) == 10
    assert not set(rec.items.tolist()) & set(recent.tolist())
    share = np.mean(cats[rec.items] == "cat2")
    assert share > np.mean(cats == "cat2")  # more of the recent items' category than the catalogue has
    kept = model.recommend_items(recent, 10, exclude_seen=False)
    assert len(kept.items) == 10


def test_popularity_fallback_respects_filter_and_exclusions(model: RecommenderModel) -> None:
    order = np.argsort(-model.popularity, kind="stable")
    rec = model.popular(5)
    assert rec.items.tolist() == order[:5].tolist()
    assert np.all(np.isnan(rec.retrieval_scores))
    rec = model.popular(5, exclude_items=order[:2])
    assert rec.items.tolist() == order[2:7].tolist()
    allowed = model.filter_mask(ItemFilter(include={"category": ["cat6"]}))
    rec = model.popular(5, allowed=allowed)
    expected = [i for i in order.tolist() if allowed[i]][:5]
    assert rec.items.tolist() == expected


def test_diversity_reorders_ranked_candidates(model: RecommenderModel) -> None:
    users = np.array([1, 2, 3, 4, 5])
    plain = model.recommend(users, 10)
    same = model.recommend(users, 10, diversity=0.0)
    diverse = model.recommend(users, 10, diversity=0.9)
    unit = model.item_emb / np.linalg.norm(model.item_emb, axis=1, keepdims=True)

    def avg_sim(items: np.ndarray) -> float:
        s = unit[items] @ unit[items].T
        return float(s[np.triu_indices(len(items), 1)].mean())

    for p, s, d in zip(plain, same, diverse, strict=True):
        assert p.items.tolist() == s.items.tolist()
        assert len(set(d.items.tolist())) == 10
        assert d.items[0] == p.items[0]
    assert np.mean([avg_sim(d.items) for d in diverse]) < np.mean([avg_sim(p.items) for p in plain])


def test_similar_with_filter_and_exclusions(model: RecommenderModel) -> None:
    allowed = model.filter_mask(ItemFilter(include={"category": ["cat1"]}))
    base = model.similar(0, 5, allowed=allowed)
    assert all(allowed[base.items]) and 0 not in base.items.tolist()
    nxt = model.similar(0, 5, allowed=allowed, exclude_items=base.items[:2])
    assert not set(nxt.items.tolist()) & set(base.items[:2].tolist())


def test_explain_points_into_history(model: RecommenderModel) -> None:
    user = 10
    rec = model.recommend(np.array([user]), 5)[0]
    history = model.seen(user)
    idx, sims = model.explain(rec.items, history)
    assert set(idx.tolist()) <= set(history.tolist())
    unit = model.item_emb / np.linalg.norm(model.item_emb, axis=1, keepdims=True)
    for item, h, s in zip(rec.items, idx, sims, strict=True):
        best = max(float(unit[item] @ unit[j]) for j in history)
        assert s == pytest.approx(best, abs=1e-5)
        assert float(unit[item] @ unit[h]) == pytest.approx(best, abs=1e-5)


def test_filter_that_removes_the_approximate_top_falls_back_to_exact(model: RecommenderModel) -> None:
    # Disallow exactly the items HNSW would return first for this query, so its oversampled
    # answer holds no allowed item at all: the row must be redone exactly, not come back short.
    q = model.user_emb[8:9]
    exact_order = np.argsort(-(model.item_emb @ q[0]), kind="stable")
    allowed = np.ones(model.n_items, bool)
    allowed[exact_order[:60]] = False
    cand, _, valid = model.retrieve(q, 10, allowed=allowed)
    assert valid.all()
    assert set(cand[0].tolist()) == set(exact_order[60:70].tolist())
