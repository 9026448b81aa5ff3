"""Test metrics of a trained model, measured through the serving code.

Split from ``pipeline.py``: evaluation reads a finished :class:`RecommenderModel` and nothing of
how it was fitted, so the trainer and the reproduction scripts share it without the trainer's
imports. Each method is a strategy of the model called as the service calls it, so a figure in
``docs/results`` is what a deployment would serve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from recommender.model import RecommenderModel
from recommender.strategies import Strategy
from training.data import InteractionData
from training.metrics import evaluate_lists, test_sets


def evaluate_model(
    model: RecommenderModel,
    data: InteractionData,
    ks: tuple[int, ...] = (10, 20),
    max_users: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Test metrics for popularity, retrieval only and two-stage, all through the serving code.

    Each is a strategy of the model, called as the service calls it (training items excluded):
    popularity with each user's training items as the subject's own, the personalized
    strategy ranked by retrieval score alone, and the personalized strategy the service
    serves (only when the bundle has a ranker). With ``max_users``, on a uniform sample (drawn
    with ``seed``) of at most that many test users; ``eval_users`` says how many.
    """
    test = test_sets(data.test_users, data.test_items)
    users = np.array(sorted(test), dtype=np.int64)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        test = {u: test[u] for u in users.tolist()}
    histories = [model.seen(u) for u in users.tolist()]
    show = progress and len(users) >= 10_000
    results: dict[str, Any] = {
        "popularity": _eval_strategy(model.strategies.popularity, histories, users, test, ks),
        "retrieval": _eval_strategy(
            model.retrieval_strategies.personalized, users, users, test, ks, show and "eval retrieval"
        ),
    }
    if model.ranker is not None:
        results["two_stage"] = _eval_strategy(
            model.strategies.personalized, users, users, test, ks, show and "eval two-stage"
        )
    if max_users is not None:
        results["eval_users"] = len(users)
    return results


def _eval_strategy(
    strategy: Strategy,
    subjects: Sequence[Any],
    users: np.ndarray,
    test: dict[int, set[int]],
    ks: tuple[int, ...],
    progress: str | bool = False,
) -> dict[str, float]:
    """Metrics of ``strategy``'s top-max(ks) for each user (``subjects[r]`` stands for ``users[r]``);
    ``progress``: the bar's label (False: none)."""
    ranked: dict[int, np.ndarray] = {}
    steps = range(0, len(users), 256)
    for b in tqdm(steps, desc=str(progress), unit="batch", disable=not progress, leave=False):
        recs = strategy.recommend(subjects[b : b + 256], max(ks))
        for u, rec in zip(users[b : b + 256].tolist(), recs, strict=True):
            ranked[u] = rec.items
    return evaluate_lists(ranked, test, ks)
