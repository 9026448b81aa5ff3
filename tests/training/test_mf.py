"""train_mf learns a tiny planted-cluster problem far better than random, for every loss."""

import numpy as np
import pytest

from training.metrics import evaluate_full_ranking
from training.mf import MFConfig, train_mf


def _clustered(seed: int = 0) -> tuple[np.ndarray, ...]:
    """60 users / 40 items in 4 clusters; users interact only within their cluster."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n_clusters = 60, 40, 4
    u_cluster, i_cluster = np.arange(n_users) % n_clusters, np.arange(n_items) % n_clusters
    tr_u, tr_i, te_u, te_i = [], [], [], []
    for u in range(n_users):
        own = rng.permutation(np.flatnonzero(i_cluster == u_cluster[u]))[:8]
        tr_u += [u] * 6
        tr_i += own[:6].tolist()
        te_u += [u] * 2
        te_i += own[6:].tolist()
    return n_users, n_items, *(np.array(a, dtype=np.int64) for a in (tr_u, tr_i, te_u, te_i))


@pytest.mark.parametrize("loss", ["bpr", "sl", "slatk"])
def test_beats_random_by_clear_margin(loss: str) -> None:
    n_users, n_items, tr_u, tr_i, te_u, te_i = _clustered()
    config = MFConfig(
        dim=8, loss=loss, epochs=40, batch_size=64, lr=0.05, n_negatives=16, k=5, cosine=loss != "bpr", seed=1
    )
    result = train_mf(tr_u, tr_i, n_users, n_items, config, progress=False)
    assert result.user_emb.shape == (n_users, 8) and result.user_emb.dtype == np.float32
    assert len(result.history) == 40 and {"epoch", "loss", "seconds"} <= set(result.history[0])
    trained = evaluate_full_ranking(result.user_emb, result.item_emb, tr_u, tr_i, te_u, te_i, ks=(5,))
    rng = np.random.default_rng(0)
    rand = evaluate_full_ranking(
        rng.normal(size=(n_users, 8)), rng.normal(size=(n_items, 8)), tr_u, tr_i, te_u, te_i, ks=(5,)
    )
    # random recall@5 is ~5/34 ~ 0.15; a learned cluster structure puts both test items in the top 5 often
    assert trained["recall@5"] > rand["recall@5"] + 0.3


def test_best_epoch_selection_and_early_stop() -> None:
    n_users, n_items, tr_u, tr_i, _te_u, _te_i = _clustered()
    calls = iter(range(100))

    def fake_eval(_u: np.ndarray, _i: np.ndarray) -> dict[str, float]:
        value = next(calls)
        return {"ndcg@20": 1.0 if value == 1 else 0.0}

    config = MFConfig(dim=4, epochs=10, batch_size=64, n_negatives=4, select_metric="ndcg@20", patience=3)
    result = train_mf(tr_u, tr_i, n_users, n_items, config, eval_fn=fake_eval, progress=False)
    assert result.best_epoch == 2
    assert len(result.history) == 5  # epochs 3, 4, 5 did not improve -> stop after epoch 5


@pytest.mark.parametrize("loss", ["bpr", "sl", "slatk"])
def test_sampled_regime_with_sparse_adam_learns(loss: str) -> None:
    """The large-catalogue path (shared pool smaller than the catalogue, SparseAdam) on the same problem."""
    n_users, n_items, tr_u, tr_i, te_u, te_i = _clustered()
    config = MFConfig(
        dim=8, loss=loss, epochs=40, batch_size=64, lr=0.05, n_negatives=16 if loss == "bpr" else 24,
        pool_size=24, k=5, cosine=loss != "bpr", seed=1, sampler="sampled", dense_max_rows=0,
        weight_decay=1e-4 if loss == "bpr" else 0.0,
    )  # fmt: skip
    result = train_mf(tr_u, tr_i, n_users, n_items, config, progress=False)
    assert result.extra["exact"] == 0.0 and result.extra["sparse_optimizer"] == 1.0
    trained = evaluate_full_ranking(result.user_emb, result.item_emb, tr_u, tr_i, te_u, te_i, ks=(5,))
    assert trained["recall@5"] > 0.45  # random is ~0.15 (see above)


def test_beta_buffer_refresh_learns() -> None:
    n_users, n_items, tr_u, tr_i, te_u, te_i = _clustered()
    config = MFConfig(
        dim=8, loss="slatk", epochs=40, batch_size=64, lr=0.05, n_negatives=16, k=5, seed=1,
        beta_refresh_epochs=5, quantile_samples=30,
    )  # fmt: skip
    result = train_mf(tr_u, tr_i, n_users, n_items, config, progress=False)
    trained = evaluate_full_ranking(result.user_emb, result.item_emb, tr_u, tr_i, te_u, te_i, ks=(5,))
    assert trained["recall@5"] > 0.45


def test_exact_regime_is_chosen_by_catalogue_size() -> None:
    n_users, n_items, tr_u, tr_i, _te_u, _te_i = _clustered()
    small = train_mf(tr_u, tr_i, n_users, n_items, MFConfig(dim=4, epochs=1, n_negatives=8), progress=False)
    big = train_mf(
        tr_u,
        tr_i,
        n_users,
        n_items,
        MFConfig(dim=4, epochs=1, n_negatives=8, exact_max_items=10),
        progress=False,
    )
    assert small.extra["exact"] == 1.0 and big.extra["exact"] == 0.0
