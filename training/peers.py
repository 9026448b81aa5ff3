"""Peer baselines from the ``implicit`` library (ALS and BPR), on our splits, tuned on validation only.

Why a peer: our BPR / SL / SL@K rows compare our own implementations with each other; a widely
used library's ALS and BPR on the *same* split, masked and scored by the *same* full-ranking
metric (:func:`training.metrics.evaluate_full_ranking`, training items excluded), say where
recserve stands against what a team would otherwise reach for.

Protocol (per data set): every configuration of :data:`GRID` is fitted on the training data minus a
validation slice (the caller's: Health's random 10% per user, ML-100K's last 20% by time) and
scored on that slice; the best by validation NDCG@K is refitted on all of train, once per seed
(``random_state``), and evaluated on test. Test never takes part in a choice. ``implicit`` is an
optional extra (``pip install -e '.[peers]'``); without it the callers skip the peer rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

PEERS = ("als", "bpr")
LABELS = {"als": "implicit ALS", "bpr": "implicit BPR"}
# A small grid around the library's defaults (ALS: factors 100, reg 0.01, alpha 1; BPR: lr 0.01,
# reg 0.01, 100 iterations); factors 64 as our MF. ALS's alpha scales the confidence of a positive.
GRID: dict[str, list[dict[str, float]]] = {
    "als": [
        {"factors": 64, "regularization": reg, "alpha": alpha, "iterations": 15}
        for reg in (0.01, 0.1, 1.0)
        for alpha in (1.0, 10.0, 40.0)
    ],
    "bpr": [
        {"factors": 64, "learning_rate": lr, "regularization": reg, "iterations": it}
        for lr in (0.01, 0.05)
        for reg in (0.001, 0.01)
        for it in (100, 300)
    ],
}


def available() -> bool:
    try:
        import implicit  # noqa: F401
    except ImportError:
        return False
    return True


def fit(
    peer: str,
    params: dict[str, float],
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(user_factors, item_factors)`` float32 whose inner product ranks items for a user.

    One CPU thread (a shared 2-core machine; the figures are quality, not speed). implicit's BPR
    appends a bias column to the item factors and a constant 1 to the users', so the inner product
    already includes the item bias.
    """
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from scipy.sparse import csr_matrix
    from threadpoolctl import threadpool_limits

    matrix = csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    p = dict(params)
    with threadpool_limits(1, "blas"):  # implicit's advice: its own loop is the parallel one
        if peer == "als":
            model: Any = AlternatingLeastSquares(
                factors=int(p["factors"]), regularization=p["regularization"], alpha=p["alpha"],
                iterations=int(p["iterations"]), random_state=seed, num_threads=1,
            )  # fmt: skip
        elif peer == "bpr":
            model = BayesianPersonalizedRanking(
                factors=int(p["factors"]), learning_rate=p["learning_rate"],
                regularization=p["regularization"], iterations=int(p["iterations"]), random_state=seed,
                num_threads=1,
            )  # fmt: skip
        else:
            raise ValueError(f"unknown peer {peer!r}; expected one of {PEERS}")
        model.fit(matrix, show_progress=False)
    return np.asarray(model.user_factors, np.float32), np.asarray(model.item_factors, np.float32)


Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def choose(
    peer: str, fit_split: Split, n_users: int, n_items: int, k: int, log: Callable[[str], None] | None = None
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The grid's best configuration by validation NDCG@k, and every configuration's validation score.

    ``fit_split`` = (fit_users, fit_items, valid_users, valid_items): train minus the validation slice,
    and the slice.
    """
    from training.metrics import evaluate_full_ranking

    fu, fi, vu, vi = fit_split
    tried = []
    for params in GRID[peer]:
        ue, ie = fit(peer, params, fu, fi, n_users, n_items, seed=0)
        score = evaluate_full_ranking(ue, ie, fu, fi, vu, vi, ks=(k,))
        tried.append({"params": params, **score})
        if log is not None:
            log(f"  {LABELS[peer]} {params}: valid ndcg@{k}={score[f'ndcg@{k}']:.4f}")
    best = max(tried, key=lambda row: row[f"ndcg@{k}"])
    return best["params"], tried


def evaluate(
    fit_split: Split,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    n_users: int,
    n_items: int,
    seeds: int,
    ks: tuple[int, ...],
    log: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per peer: the chosen configuration, its test metrics per seed, mean and sample std."""
    from training.metrics import evaluate_full_ranking

    out: dict[str, dict[str, Any]] = {}
    for peer in PEERS:
        params, tried = choose(peer, fit_split, n_users, n_items, max(ks), log)
        per_seed = []
        for seed in range(seeds):
            ue, ie = fit(peer, params, *train, n_users, n_items, seed=seed)
            per_seed.append(evaluate_full_ranking(ue, ie, *train, *test, ks=ks))
        row: dict[str, Any] = {"params": params, "validation": tried}
        for key in per_seed[0]:
            values = np.array([s[key] for s in per_seed], np.float64)
            row[key] = float(values.mean())
            row[f"{key}_std"] = float(values.std(ddof=1)) if seeds > 1 else 0.0
            row[f"{key}_per_seed"] = values.tolist()
        out[peer] = row
        if log is not None:
            shown = ", ".join(f"{k}={row[k]:.4f}" for k in per_seed[0])
            log(f"{LABELS[peer]} chosen {params}: test {shown}")
    return out


def time_split_rows(
    data: Any, seeds: int, ks: tuple[int, ...], log: Callable[[str], None] | None = None
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate` on an :class:`~training.data.InteractionData` with training times (ML-100K):
    the validation slice is the last 20% of each user's training history by time (the slice our
    ranker learns on), so the choice mirrors the test split's shape."""
    from training.data import split_last_fraction

    keep, held = split_last_fraction(data.train_users, data.train_items, data.train_time, 0.2)
    split = (data.train_users[keep], data.train_items[keep], data.train_users[held], data.train_items[held])
    train, test = (data.train_users, data.train_items), (data.test_users, data.test_items)
    return evaluate(split, train, test, data.n_users, data.n_items, seeds, ks, log)
