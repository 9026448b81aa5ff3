"""Full-ranking Recall@K / NDCG@K, with the definitions used by the SL@K paper's benchmark code.

Per user with at least one test item: Recall@K = hits in top K / |test items|; NDCG@K = DCG@K / IDCG@K with
``DCG = sum 1/log2(rank + 1)`` over hits and IDCG over ``min(|test items|, K)`` ideal positions. Ranking is
over all items with the user's training items masked out (they are known, so recommending them is no hit).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def recall_ndcg_at_k(
    ranked: np.ndarray, relevant: set[int] | np.ndarray | Iterable[int], k: int
) -> tuple[float, float]:
    """Recall@k and NDCG@k of one ranked list against a relevant set (reference implementation for tests)."""
    rel = set(int(x) for x in relevant)
    if not rel:
        return 0.0, 0.0
    top = [int(x) for x in list(ranked)[:k]]
    gains = [1.0 / np.log2(pos + 2) for pos, item in enumerate(top) if item in rel]
    idcg = sum(1.0 / np.log2(pos + 2) for pos in range(min(len(rel), k)))
    return len(gains) / len(rel), float(sum(gains) / idcg)


def _csr(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Group items by user: returns (indptr, items sorted by user)."""
    order = np.argsort(users, kind="stable")
    counts = np.bincount(users, minlength=n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return indptr, items[order]


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
    """Mean Recall@K / NDCG@K over users with >= 1 test item, ranking all items by inner product.

    Work is done in user batches with torch (one matmul + one top-k per batch), so evaluating all 1,974
    Health users takes a few tens of milliseconds and can run every epoch.
    """
    ks = sorted(set(int(k) for k in ks))
    k_max = min(max(ks), item_emb.shape[0])
    n_users, n_items = user_emb.shape[0], item_emb.shape[0]
    users_all = np.unique(test_users)
    u_t = torch.from_numpy(np.ascontiguousarray(user_emb, dtype=np.float32))
    i_t = torch.from_numpy(np.ascontiguousarray(item_emb, dtype=np.float32))
    train_ptr, train_sorted = _csr(train_users, train_items, n_users)
    test_ptr, test_sorted = _csr(test_users, test_items, n_users)
    discounts = 1.0 / np.log2(np.arange(2, k_max + 2))
    cum_disc = np.concatenate([[0.0], np.cumsum(discounts)])
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")}
    with torch.no_grad():
        for start in range(0, len(users_all), batch_size):
            batch = users_all[start : start + batch_size]
            scores = u_t[torch.from_numpy(batch)] @ i_t.T  # (b, n_items)
            rows, cols = _rows_cols(batch, train_ptr, train_sorted)
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
            top = torch.topk(scores, k_max, dim=1).indices.numpy()  # (b, k_max)
            rel = np.zeros((len(batch), n_items), dtype=bool)
            t_rows, t_cols = _rows_cols(batch, test_ptr, test_sorted)
            rel[t_rows, t_cols] = True
            hits = np.take_along_axis(rel, top, axis=1)  # (b, k_max)
            n_rel = rel.sum(axis=1)
            for k in ks:
                h = hits[:, :k]
                sums[f"recall@{k}"] += float((h.sum(axis=1) / n_rel).sum())
                dcg = (h * discounts[:k]).sum(axis=1)
                idcg = cum_disc[np.minimum(n_rel, k)]
                sums[f"ndcg@{k}"] += float((dcg / idcg).sum())
    n = max(len(users_all), 1)
    return {key: value / n for key, value in sums.items()}


def _rows_cols(
    batch: np.ndarray, indptr: np.ndarray, sorted_items: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(row-in-batch, item) pairs of the batch users' interactions, vectorised over the CSR layout."""
    starts, ends = indptr[batch], indptr[batch + 1]
    lengths = ends - starts
    rows = np.repeat(np.arange(len(batch)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    cols = sorted_items[np.repeat(starts, lengths) + offsets]
    return rows, cols


def test_sets(users: np.ndarray, items: np.ndarray) -> dict[int, set[int]]:
    """Each user's held-out items as a set (users without any are absent)."""
    out: dict[int, set[int]] = {}
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        out.setdefault(u, set()).add(i)
    return out


def evaluate_lists(
    ranked: dict[int, np.ndarray], test: dict[int, set[int]], ks: Iterable[int] = (5, 10, 20, 50)
) -> dict[str, float]:
    """Mean Recall@K / NDCG@K of already-ranked lists (e.g. from the two-stage pipeline).

    Same definitions as :func:`evaluate_full_ranking`, for rankings that are not a plain inner
    product over all items, so the offline numbers come from the serving code itself.
    """
    out: dict[str, float] = {}
    users = [u for u in test if test[u]]
    for k in ks:
        pairs = [recall_ndcg_at_k(ranked[u], test[u], k) for u in users]
        out[f"recall@{k}"] = float(np.mean([p[0] for p in pairs]))
        out[f"ndcg@{k}"] = float(np.mean([p[1] for p in pairs]))
    return out


def evaluate_exact_retrieval(
    user_emb: np.ndarray,
    item_emb: np.ndarray,
    train_users: np.ndarray,
    train_items: np.ndarray,
    test_users: np.ndarray,
    test_items: np.ndarray,
    ks: Iterable[int] = (5, 10, 20, 50),
    batch_size: int = 1024,
) -> dict[str, float]:
    """:func:`evaluate_full_ranking`'s figures, computed by the service's own stages.

    The lists come from :class:`~recommender.strategies.PersonalizedStrategy` over an exact
    (``IndexFlatIP``) :class:`~recommender.candidates.CandidateRetriever`, ranked by the
    retrieval score, each user's training items excluded: the serving path with the approximate
    index swapped for an exact one, which is the paper's full-ranking protocol. Reported final
    numbers use this; :func:`evaluate_full_ranking` (one torch matmul and top-k per batch, cheap
    enough to run every epoch) draws the per-epoch curves, and a test checks that the two agree.
    """
    from recommender.candidates import CandidateRetriever
    from recommender.features import FeatureAssembler
    from recommender.queries import QueryBuilder
    from recommender.ranking import RetrievalScoreRanking
    from recommender.retrieval import ItemIndex
    from recommender.strategies import PersonalizedStrategy
    from recommender.two_stage import TwoStage

    ks = sorted(set(int(k) for k in ks))
    n_users, n_items = user_emb.shape[0], item_emb.shape[0]
    k_max = min(max(ks), n_items)
    indptr, seen = _csr(np.asarray(train_users), np.asarray(train_items, np.int64), n_users)
    no_features = FeatureAssembler(
        np.zeros((n_users, 0)), np.zeros((n_items, 0)), np.zeros((n_users, 0)), np.zeros((n_items, 0))
    )
    retriever = CandidateRetriever(item_emb, ItemIndex.build(item_emb, "flat"))
    strategy = PersonalizedStrategy(
        TwoStage(retriever, RetrievalScoreRanking(), k_max),
        QueryBuilder(user_emb, item_emb, no_features, indptr, seen),
    )
    test = test_sets(test_users, test_items)
    users = np.array(sorted(test), dtype=np.int64)
    ranked: dict[int, np.ndarray] = {}
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        for u, rec in zip(batch.tolist(), strategy.recommend(batch, k_max), strict=True):
            ranked[u] = rec.items
    return evaluate_lists(ranked, test, ks)
