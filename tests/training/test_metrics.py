"""Hand-computed Recall@K / NDCG@K cases (IDCG over min(|relevant|, K), as in the SL@K benchmark code)."""

import math

import numpy as np
import pytest

from training.metrics import evaluate_exact_retrieval, evaluate_full_ranking, recall_ndcg_at_k


def test_single_hit_at_rank_two() -> None:
    recall, ndcg = recall_ndcg_at_k(np.array([5, 3, 9]), {3}, k=3)
    assert recall == 1.0
    assert ndcg == pytest.approx(1 / math.log2(3))


def test_two_relevant_one_found_idcg_uses_min_rel_k() -> None:
    # relevant {1, 7}; top-2 = [1, 4]: one hit at rank 1 -> DCG 1, IDCG = 1 + 1/log2(3)
    recall, ndcg = recall_ndcg_at_k(np.array([1, 4, 7]), [1, 7], k=2)
    assert recall == 0.5
    assert ndcg == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_more_relevant_than_k() -> None:
    # 3 relevant, k=1, hit at rank 1: recall 1/3, ndcg 1 (IDCG over min(3, 1) = 1 position)
    assert recall_ndcg_at_k(np.array([2, 0]), {0, 1, 2}, k=1) == (pytest.approx(1 / 3), pytest.approx(1.0))


def test_no_hit_and_empty_relevant() -> None:
    assert recall_ndcg_at_k(np.array([0, 1]), {5}, k=2) == (0.0, 0.0)
    assert recall_ndcg_at_k(np.array([0, 1]), set(), k=2) == (0.0, 0.0)


def test_full_ranking_masks_training_items_and_averages_users() -> None:
    # 2 users, 4 items, 1-d embeddings: item scores for both users are item_emb (user_emb = 1).
    user_emb = np.ones((2, 1), dtype=np.float32)
    item_emb = np.array([[4.0], [3.0], [2.0], [1.0]], dtype=np.float32)
    # user 0 trained on item 0 (masked) -> ranking [1, 2, 3]; test item 2 at rank 2.
    # user 1 no train items -> ranking [0, 1, 2, 3]; test items {0, 3}: hit at rank 1 for k=2.
    out = evaluate_full_ranking(
        user_emb,
        item_emb,
        train_users=np.array([0]),
        train_items=np.array([0]),
        test_users=np.array([0, 1, 1]),
        test_items=np.array([2, 0, 3]),
        ks=(2,),
    )
    ndcg_u0 = (1 / math.log2(3)) / 1.0
    ndcg_u1 = 1.0 / (1 + 1 / math.log2(3))
    assert out["recall@2"] == pytest.approx((1.0 + 0.5) / 2)
    assert out["ndcg@2"] == pytest.approx((ndcg_u0 + ndcg_u1) / 2)


def test_full_ranking_matches_reference_on_random_data() -> None:
    rng = np.random.default_rng(0)
    u, i = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(15, 3)).astype(np.float32)
    tr_u, tr_i = rng.integers(0, 6, 20), rng.integers(0, 15, 20)
    te_u, te_i = rng.integers(0, 6, 12), rng.integers(0, 15, 12)
    keep = ~np.isin(te_u * 100 + te_i, tr_u * 100 + tr_i)
    te_u, te_i = te_u[keep], te_i[keep]
    out = evaluate_full_ranking(u, i, tr_u, tr_i, te_u, te_i, ks=(5,), batch_size=2)
    recalls, ndcgs = [], []
    for user in np.unique(te_u):
        scores = u[user] @ i.T
        scores[tr_i[tr_u == user]] = -np.inf
        ranked = np.argsort(-scores, kind="stable")
        r, n = recall_ndcg_at_k(ranked, set(te_i[te_u == user].tolist()), 5)
        recalls.append(r)
        ndcgs.append(n)
    assert out["recall@5"] == pytest.approx(np.mean(recalls))
    assert out["ndcg@5"] == pytest.approx(np.mean(ndcgs))


def test_exact_retrieval_through_the_serving_stages_matches_full_ranking() -> None:
    rng = np.random.default_rng(1)
    u, i = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(60, 4)).astype(np.float32)
    tr_u, tr_i = rng.integers(0, 30, 300), rng.integers(0, 60, 300)
    te_u, te_i = rng.integers(0, 30, 90), rng.integers(0, 60, 90)
    full = evaluate_full_ranking(u, i, tr_u, tr_i, te_u, te_i, ks=(5, 20))
    served = evaluate_exact_retrieval(u, i, tr_u, tr_i, te_u, te_i, ks=(5, 20), batch_size=7)
    assert served.keys() == full.keys()
    for key, value in full.items():
        assert served[key] == pytest.approx(value, abs=1e-12), key
