"""Building the query side: known users' rows and users known only by items (cold start).

The tiny model carries the ``recent_vec_*`` block, so these tests cover the fix for cold-start
users getting the population mean in that block although their recent items are known.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from recommender.features import recent_item_vectors
from recommender.model import RECENT_WINDOW_KEY, RecommenderModel


def test_known_users_are_their_bundle_rows(tiny: RecommenderModel) -> None:
    users = np.array([3, 0, 3])
    emb, feats, profiles = tiny.stages.queries.known(users)
    np.testing.assert_array_equal(emb, tiny.user_emb[users])
    np.testing.assert_array_equal(feats, tiny.features.user_features[users])
    np.testing.assert_array_equal(profiles, tiny.features.user_profile[users])


def test_cold_start_user_with_a_known_users_history_gets_that_users_recent_block(
    tiny: RecommenderModel,
) -> None:
    d, window = tiny.features.n_vector, tiny.metadata[RECENT_WINDOW_KEY]
    assert d == tiny.item_emb.shape[1] and window == 3
    for user in (0, 9, 31):
        history = tiny.seen(user)  # oldest first, as the block was built
        _, feats, _ = tiny.cold_start_inputs(history)
        np.testing.assert_allclose(feats[0, -d:], tiny.features.user_features[user, -d:], rtol=1e-6)
        np.testing.assert_allclose(feats[0, -d:], tiny.item_emb[history[-window:]].mean(axis=0), rtol=1e-5)
        population = tiny.features.user_features[:, -d:].mean(axis=0)
        assert not np.allclose(feats[0, -d:], population, atol=1e-3)  # what it was before the fix


def test_other_cold_start_inputs_are_centroid_profile_and_mean_user(tiny: RecommenderModel) -> None:
    items = np.array([4, 9, 17, 21])
    d = tiny.features.n_vector
    emb, feats, profile = tiny.cold_start_inputs(items)
    assert emb.shape == (1, tiny.item_emb.shape[1]) and feats.shape == (
        1,
        tiny.features.user_features.shape[1],
    )
    np.testing.assert_allclose(emb[0], tiny.item_emb[items].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(feats[0, :-d], tiny.features.user_features[:, :-d].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(profile[0], tiny.features.profile_from_items(items))


def test_a_batch_of_item_users_is_built_row_by_row(tiny: RecommenderModel) -> None:
    lists = [np.array([1, 2, 3, 4, 5]), np.array([9]), np.array([40, 41])]
    batch = tiny.stages.queries.from_items(lists)
    for r, items in enumerate(lists):
        one = tiny.cold_start_inputs(items)
        for got, want in zip(batch, one, strict=True):
            np.testing.assert_allclose(got[r], want[0], rtol=1e-6)


def test_without_a_recorded_window_every_given_item_counts(
    make_tiny: Callable[..., RecommenderModel],
) -> None:
    model = make_tiny()
    del model.metadata[RECENT_WINDOW_KEY]  # a bundle written before the window was recorded
    model.metadata = dict(model.metadata)  # reassigning a field rebuilds the stages
    items = np.array([4, 9, 17, 21, 30])
    _, feats, _ = model.cold_start_inputs(items)
    np.testing.assert_allclose(
        feats[0, -model.features.n_vector :], model.item_emb[items].mean(axis=0), rtol=1e-5
    )


def test_a_model_without_the_block_keeps_the_mean_users_features(
    make_tiny: Callable[..., RecommenderModel],
) -> None:
    model = make_tiny(vector_block=False)
    _, feats, _ = model.cold_start_inputs(np.array([1, 2]))
    np.testing.assert_allclose(feats[0], model.features.user_features.mean(axis=0), rtol=1e-6)


def test_a_user_built_from_no_items_is_refused(tiny: RecommenderModel) -> None:
    with pytest.raises(ValueError, match="at least one item"):
        tiny.stages.queries.from_items([np.array([1]), np.zeros(0, np.int64)])


def test_recent_item_vectors_windows_each_row_from_its_end() -> None:
    vecs = np.eye(4, dtype=np.float32)
    indptr = np.array([0, 3, 3, 4])
    indices = np.array([0, 1, 2, 3])  # row 0: items 0, 1, 2 (oldest first); row 1 empty; row 2: item 3
    out = recent_item_vectors(vecs, indptr, indices, window=2)
    assert out.tolist() == [[0, 0.5, 0.5, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert recent_item_vectors(vecs, indptr, indices)[0].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0])
    with pytest.raises(ValueError, match="window"):
        recent_item_vectors(vecs, indptr, indices, window=0)
