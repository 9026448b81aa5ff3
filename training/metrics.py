"""Top-K metrics as the SL@K paper defines them (IDCG over min(|test items|, K))."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def recall_ndcg_at_k(ranked: np.ndarray, relevant: Iterable[int], k: int) -> tuple[float, float]:
    """Recall@K and NDCG@K of one ranked list against a set of relevant items."""
    rel = set(int(x) for x in relevant)
    if not rel:
        raise ValueError("relevant must not be empty")
    top = [int(x) for x in np.asarray(ranked)[:k]]
    hits = np.array([1.0 if x in rel else 0.0 for x in top])
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((hits * discounts[: len(hits)]).sum())
    idcg = float(discounts[: min(len(rel), k)].sum())
    return float(hits.sum()) / len(rel), dcg / idcg


def evaluate_lists(
    ranked: dict[int, np.ndarray], test: dict[int, set[int]], ks: Iterable[int] = (5, 10, 20, 50)
) -> dict[str, float]:
    """Mean Recall@K / NDCG@K over users with at least one test item."""
    out: dict[str, float] = {}
    users = [u for u in test if test[u]]
    for k in ks:
        rs, ns = zip(*(recall_ndcg_at_k(ranked[u], test[u], k) for u in users), strict=True)
        out[f"recall@{k}"] = float(np.mean(rs))
        out[f"ndcg@{k}"] = float(np.mean(ns))
    return out


def test_sets(users: np.ndarray, items: np.ndarray) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        out.setdefault(u, set()).add(i)
    return out


def evaluate_full_ranking(
    user_emb: np.ndarray,
    item_emb: np.ndarray,
    train_users: np.ndarray,
    train_items: np.ndarray,
    test_users: np.ndarray,
    test_items: np.ndarray,
    ks: Iterable[int] = (5, 10, 20, 50),
    batch_size: int = 1024,
) -> dict[str, float]:
    """Exact full ranking over all items, each user's training items masked."""
    ks = list(ks)
    test = test_sets(test_users, test_items)
    users = np.array(sorted(test), dtype=np.int64)
    kmax = max(ks)
    ranked: dict[int, np.ndarray] = {}
    for b in range(0, len(users), batch_size):
        ub = users[b : b + batch_size]
        scores = user_emb[ub] @ item_emb.T
        pos = {u: r for r, u in enumerate(ub.tolist())}
        m = np.isin(train_users, ub)
        rows = np.array([pos[u] for u in train_users[m].tolist()], dtype=np.int64)
        scores[rows, train_items[m]] = -np.inf
        top = np.argpartition(-scores, kmax - 1, axis=1)[:, :kmax]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        for r, u in enumerate(ub.tolist()):
            ranked[u] = top[r, order[r]]
    return evaluate_lists(ranked, test, ks)
