"""The validation search behind :data:`training.reproduce_health.CHOSEN` (``reproduce health --tune``).

Every run trains on Health's train split minus a per-user 10% validation slice (seed 0) and is scored
on that slice every 5 epochs; test is never read here. ``--tune-extra`` runs only :data:`TUNE_EXTRA`.
"""

from __future__ import annotations

import numpy as np

from training.health import HealthData, load_health, split_validation
from training.reproduce_health import CHOSEN, COMMON

# The validation search behind CHOSEN, rerun by --tune (same configs as the documented runs).
TUNE_MAX_EPOCHS = 60
TUNE_GRID: dict[str, list[dict[str, object]]] = {
    "bpr": [
        {"loss": "bpr", "cosine": False, "lr": lr, "n_negatives": 1, "weight_decay": wd}
        for lr, wd in (
            (1e-2, 0.0),
            (1e-3, 0.0),
            (1e-3, 1e-5),
            (1e-2, 1e-4),
            (1e-3, 1e-4),
            (1e-2, 1e-5),
            (5e-3, 1e-4),
        )
    ],
    "sl": [{"loss": "sl", "cosine": True, "lr": lr, "n_negatives": 1000, "tau": 0.2} for lr in (1e-1, 1e-2)],
    "slatk": [
        {"loss": "slatk", "cosine": True, "lr": lr, "n_negatives": 1000, "tau": tau, "tau_w": tau_w, "k": 20}
        for lr, tau, tau_w in (
            (1e-1, 0.2, 1.0),
            (1e-2, 0.2, 1.0),
            (1e-1, 0.2, 0.5),
            (1e-1, 0.2, 0.25),
            (1e-1, 0.1, 0.5),
        )
    ]
    + [
        {
            "loss": "slatk",
            "cosine": True,
            "lr": 1e-1,
            "n_negatives": 1000,
            "tau": 0.2,
            "tau_w": 1.0,
            "k": 20,
            "slatk_detach_weight": False,
        }
    ],
}


# Issue 15 (the trainer that scales), on the same validation slice: the authors' per-user beta buffer
# refreshed every 5 epochs from 1,000 sampled items, and the large-catalogue sampler (1,000 uniform
# negatives shared by a batch, SparseAdam) forced on Health's 1,200 items. `--tune-extra` reruns it.
_SLATK = {k: v for k, v in CHOSEN["slatk"].items() if k != "epochs"}
TUNE_EXTRA: list[dict[str, object]] = [
    _SLATK,
    {**_SLATK, "beta_refresh_epochs": 5, "quantile_samples": 1000},
    {**_SLATK, "sampler": "sampled", "pool_size": 1000, "dense_max_rows": 0},
]


def tune(
    data: HealthData | None = None,
    max_epochs: int = TUNE_MAX_EPOCHS,
    progress: bool = False,
    grid: dict[str, list[dict[str, object]]] | None = None,
) -> dict:
    """Rerun the validation search behind :data:`CHOSEN`: grid per loss, best epoch by validation NDCG@20.

    Trains on train minus a per-user 10% validation slice (seed 0) and evaluates on that slice every 5
    epochs. Prints a markdown table; the winners are copied into :data:`CHOSEN` by hand (a human reviews
    the choice; nothing here touches test).
    """
    import torch

    from training.metrics import evaluate_full_ranking
    from training.mf import MFConfig, MFResult, train_mf

    torch.set_num_threads(1)
    data = data or load_health()
    fu, fi, vu, vi = split_validation(data.train_users, data.train_items, fraction=0.1, seed=0)

    def valid_eval(user_emb: np.ndarray, item_emb: np.ndarray) -> dict[str, float]:
        return evaluate_full_ranking(user_emb, item_emb, fu, fi, vu, vi, ks=(20,))

    results: dict[str, list[dict]] = {}
    print("| loss | params | best epoch | valid Recall@20 | valid NDCG@20 |")
    print("|---|---|---|---|---|")
    for loss, configs in (grid or TUNE_GRID).items():
        results[loss] = []
        for params in configs:
            cfg = MFConfig(**{**COMMON, **params, "epochs": max_epochs, "eval_every": 5})  # type: ignore[arg-type]
            cfg.select_metric = "ndcg@20"
            res: MFResult = train_mf(fu, fi, data.n_users, data.n_items, cfg, valid_eval, progress)
            best = max((h for h in res.history if "ndcg@20" in h), key=lambda h: h["ndcg@20"])
            row = {
                "params": params,
                "epoch": int(best["epoch"]),
                **{k: best[k] for k in ("recall@20", "ndcg@20")},
            }
            results[loss].append(row)
            shown = {k: v for k, v in params.items() if k != "loss"}
            print(
                f"| {loss} | {shown} | {row['epoch']} | {row['recall@20']:.4f} | {row['ndcg@20']:.4f} |",
                flush=True,
            )
    return results
