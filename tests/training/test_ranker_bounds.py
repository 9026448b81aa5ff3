"""The two-stage trainer's memory bounds at catalogue scale: the ranker's lists are capped (a
seeded sample of users), built a chunk of users at a time, and normalised without a float64 copy
of every row — with the same rows and statistics as the one-shot code for data under the caps."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from recommender.model import RecommenderModel
from training.data import InteractionData
from training.evaluation import evaluate_model
from training.mf import MFConfig
from training.pipeline import TrainConfig, candidate_lists, train_model
from training.ranker_train import RankerConfig, normalisation, sample_label_users

FAST = TrainConfig(  # tests/conftest.py's session config (that module is shadowed here)
    mf=MFConfig(dim=16, epochs=20, n_negatives=64, batch_size=256, tau=0.3, lr=3e-2),
    ranker=RankerConfig(hidden_units=16, num_layers=2, epochs=2),
    n_candidates=50,
    seed=7,
)


def test_lists_built_in_chunks_equal_one_shot(trained: tuple[RecommenderModel, dict]) -> None:
    model, _ = trained
    rng = np.random.default_rng(0)
    users = rng.integers(0, 300, 400)
    items = rng.integers(0, 200, 400)
    whole = candidate_lists(model, users, items, chunk=10_000)
    chunked = candidate_lists(model, users, items, chunk=7)
    for a, b in zip(whole, chunked, strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)
    assert whole[0].shape == (len(np.unique(users)), model.n_candidates, model.features.n_features)


def test_normalisation_matches_fit_normalisation(trained: tuple[RecommenderModel, dict]) -> None:
    model, _ = trained
    rng = np.random.default_rng(1)
    rows, _, valid = candidate_lists(model, rng.integers(0, 300, 200), rng.integers(0, 200, 200))
    valid[::3, -5:] = False  # some invalid slots, as short candidate lists have
    mean, std = normalisation(rows, valid, chunk=9)
    reference = copy.copy(model.features)  # the session's model keeps its own statistics
    reference.fit_normalisation(rows[valid])
    np.testing.assert_allclose(mean, reference.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, reference.std, rtol=1e-6, atol=1e-6)
    assert np.all(std > 0)


def test_sample_label_users_caps_users_and_keeps_their_pairs() -> None:
    users = np.repeat(np.arange(1000), 3)
    items = np.arange(3000)
    u, i = sample_label_users(users, items, 100, seed=5)
    assert len(np.unique(u)) == 100 and len(u) == 300  # all three pairs of each chosen user
    assert np.array_equal(items[np.isin(users, u)], i)
    assert np.array_equal(sample_label_users(users, items, 100, seed=5)[0], u)  # seeded
    same_u, same_i = sample_label_users(users, items, 1000, seed=5)
    assert same_u is users and same_i is items  # under the cap: untouched
    assert sample_label_users(users, items, None, seed=5)[0] is users


def test_train_model_respects_the_list_and_eval_caps(small_data: InteractionData) -> None:
    config = dataclasses.replace(FAST, ranker_max_lists=40, eval_max_users=50, list_chunk=16)
    model, metrics = train_model(small_data, config, progress=False)
    assert metrics["ranker_lists"] == 40
    assert metrics["eval_users"] == 50
    assert 0 <= metrics["candidate_recall"] <= 1
    assert set(metrics["two_stage"]) >= {"recall@10", "ndcg@10"}
    full = evaluate_model(model, small_data)
    assert "eval_users" not in full  # no cap: every test user, as the documented results use
