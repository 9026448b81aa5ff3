"""One seed of the Health reproduction: the paper's MF rows and the two-stage row.

The two-stage row is the service's model on Health's split: SL@20 MF (the same constants and seed
as the SL@20 row) → HNSW top-200 → the DeepFeatureRanking ranker, trained by
:func:`training.pipeline.train_model` exactly as for any other data set (stage-1 MF on each user's
training items minus a random 20%, the ranker on candidate lists labelled by that 20%, early
stopping on 15% of the lists), and evaluated through the serving code (the model's strategies, each
user's training items excluded) with the same Recall@20 / NDCG@20 as the other rows. The served MF
*is* the SL@20 row's model of the same seed (same data, constants and seed give the same
embeddings), so it is passed in rather than trained twice. Health has no times and no side
files, so the ranker sees user activity, item popularity, the retrieval score and rank.

:func:`run_seed` is a top-level function so the reproduction can run seeds in parallel processes
(``--workers``): each seed is deterministic (one torch thread, seeded draws) whatever runs beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.datasets import health_interactions
from training.health import DATASET_NAME, HealthData, load_health

LOSSES = ("bpr", "sl", "slatk")  # reproduce_health.LOSSES


def two_stage_config(seed: int) -> Any:
    """The pipeline's config for Health: SL@20's chosen MF, the generic ranker recipe of
    ``training.ingest.build.file_train_config`` (no recent-items block: Health has no times)."""
    from training.pipeline import TrainConfig
    from training.ranker_train import RankerConfig
    from training.reproduce_health import make_config

    return TrainConfig(
        mf=make_config("slatk", seed),
        ranker=RankerConfig(epochs=20, val_fraction=0.15, patience=3, seed=seed),
        n_candidates=200,
        seed=seed,
    )


def run_seed(
    seed: int, data_dir: Path | None, progress: bool, two_stage: bool
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Every loss (and the two-stage model) for one seed: ``(final metrics per row, test NDCG@20
    per epoch per loss)``. Test metrics per epoch only draw the curve; no choice reads them."""
    import torch

    from training.metrics import evaluate_exact_retrieval, evaluate_full_ranking
    from training.mf import train_mf
    from training.reproduce_health import make_config

    torch.set_num_threads(1)  # one thread per seed: the same figures however many seeds run at once
    data = load_health(data_dir)

    def test_eval(user_emb: np.ndarray, item_emb: np.ndarray) -> dict[str, float]:
        return evaluate_full_ranking(
            user_emb, item_emb, data.train_users, data.train_items, data.test_users, data.test_items, ks=(20,)
        )

    rows: dict[str, dict[str, float]] = {}
    curves: dict[str, list[float]] = {}
    for loss in LOSSES:
        config = make_config(loss, seed)
        result = train_mf(
            data.train_users, data.train_items, data.n_users, data.n_items, config, test_eval, progress
        )
        final = evaluate_exact_retrieval(  # the service's stages, exact index
            result.user_emb,
            result.item_emb,
            data.train_users,
            data.train_items,
            data.test_users,
            data.test_items,
        )
        secs = float(np.mean([h["seconds"] for h in result.history]))
        rows[loss] = {**final, "seconds_per_epoch": secs}
        curves[loss] = [h["ndcg@20"] for h in result.history]
        if loss == "slatk" and two_stage:
            rows["two_stage"] = two_stage_metrics(data, seed, result, progress)
    return rows, curves


def two_stage_metrics(data: HealthData, seed: int, slatk: Any, progress: bool) -> dict[str, float]:
    """Test Recall@20 / NDCG@20 of the two-stage model (and of its retrieval alone, same code)."""
    import time

    from training.pipeline import train_model

    started = time.perf_counter()
    interactions = health_interactions(data, DATASET_NAME)
    _, metrics = train_model(interactions, two_stage_config(seed), progress, final_mf=slatk)
    out = {key: metrics["two_stage"][key] for key in ("recall@20", "ndcg@20")}
    out["retrieval_recall@20"] = metrics["retrieval"]["recall@20"]
    out["retrieval_ndcg@20"] = metrics["retrieval"]["ndcg@20"]
    out["candidate_recall"] = metrics["candidate_recall"]
    out["seconds"] = time.perf_counter() - started
    return out
