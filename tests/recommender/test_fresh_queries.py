"""Known users with interactions newer than the model: the recent-items block slides forward,
their new items are left out like training items, and with nothing new nothing changes."""

from __future__ import annotations

import numpy as np

from recommender.features import recent_item_vectors
from recommender.model import RECENT_WINDOW_KEY, RecommenderModel

EMPTY = np.zeros(0, np.int64)


def _new_items(model: RecommenderModel, user: int, n: int) -> np.ndarray:
    return np.setdiff1d(np.arange(model.n_items), model.seen(user))[:n].astype(np.int64)


def test_nothing_new_is_the_bundle_row(tiny: RecommenderModel) -> None:
    users = np.array([1, 5])
    q = tiny.stages.queries
    for a, b in zip(q.known_with_recent(users, [EMPTY, EMPTY]), q.known(users), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_full_window_of_new_items_is_the_block_training_would_build(tiny: RecommenderModel) -> None:
    d, window = tiny.features.n_vector, tiny.metadata[RECENT_WINDOW_KEY]
    user = 4
    fresh = _new_items(tiny, user, window + 1)
    _, feats, _ = tiny.stages.queries.known_with_recent(np.array([user]), [fresh])
    history = np.concatenate([tiny.seen(user), fresh])
    expected = recent_item_vectors(tiny.item_emb, np.array([0, len(history)]), history, window)[0]
    np.testing.assert_allclose(feats[0, -d:], expected, rtol=1e-5)
    np.testing.assert_array_equal(feats[0, :-d], tiny.features.user_features[user, :-d])  # the rest stays


def test_fewer_new_items_than_the_window_slide_it_by_their_share(tiny: RecommenderModel) -> None:
    d, window = tiny.features.n_vector, tiny.metadata[RECENT_WINDOW_KEY]
    user = 7
    fresh = _new_items(tiny, user, 1)
    old = tiny.features.user_features[user, -d:]
    _, feats, _ = tiny.stages.queries.known_with_recent(np.array([user]), [fresh])
    new = tiny.item_emb[fresh[0]]
    np.testing.assert_allclose(feats[0, -d:], ((window - 1) * old + new) / window, rtol=1e-5)
    assert not np.allclose(feats[0, -d:], old)


def test_recommend_fresh_leaves_new_items_out_and_equals_recommend_without_them(
    tiny: RecommenderModel,
) -> None:
    strategy = tiny.strategies.personalized
    users = np.array([2, 3])
    plain = strategy.recommend(users, 10)
    same = strategy.recommend_fresh(users, [EMPTY, EMPTY], [EMPTY, EMPTY], 10)
    for a, b in zip(plain, same, strict=True):
        np.testing.assert_array_equal(a.items, b.items)
    top = plain[0].items[:2]
    fresh = strategy.recommend_fresh(users, [top, EMPTY], [top, EMPTY], 10)
    assert not set(top.tolist()) & set(fresh[0].items.tolist())
    np.testing.assert_array_equal(fresh[1].items, plain[1].items)  # per user: the other is untouched
    kept = strategy.recommend_fresh(users, [top, EMPTY], [EMPTY, EMPTY], 10, exclude_seen=False)
    unfiltered = strategy.recommend(users, 10, exclude_seen=False)
    np.testing.assert_array_equal(kept[0].items, unfiltered[0].items)  # exclude_seen=False keeps them


def test_without_the_block_only_exclusions_change(make_tiny) -> None:  # type: ignore[no-untyped-def]
    model = make_tiny(vector_block=False)
    q = model.stages.queries
    users = np.array([0])
    for a, b in zip(q.known_with_recent(users, [_new_items(model, 0, 2)]), q.known(users), strict=True):
        np.testing.assert_array_equal(a, b)
