"""The data sets ``recserve train`` knows, each with the training configuration its docs report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from training.data import InteractionData
from training.health import HealthData
from training.mf import LOSSES
from training.pipeline import TrainConfig

DATASETS = ("synthetic", "health", "ml100k")
DEFAULT_LOSS = "slatk"  # beats SL on NDCG@20 in every seed on Health (docs/results/health.md)


def health_as_interactions(data_dir: Path | None = None) -> InteractionData:
    """Amazon2014-Health as :class:`InteractionData` (see :func:`health_interactions`)."""
    from training.health import load_health

    return health_interactions(load_health(data_dir))


def health_interactions(h: HealthData, name: str = "health") -> InteractionData:
    """A loaded Health split as :class:`InteractionData`.

    The split ships no side features, so the ranker sees what can be derived from the
    interactions alone: the user's log activity, the item's popularity (added by the pipeline)
    and the retrieval score and rank. Ids are the files' own ``*_procid`` values.
    """
    activity = np.bincount(h.train_users, minlength=h.n_users).astype(np.float32)
    return InteractionData(
        name=name,
        user_ids=[str(u) for u in range(h.n_users)],
        item_ids=[str(i) for i in range(h.n_items)],
        train_users=h.train_users,
        train_items=h.train_items,
        test_users=h.test_users,
        test_items=h.test_items,
        user_features=np.log1p(activity)[:, None],
        item_features=np.zeros((h.n_items, 0), np.float32),
        item_tags=np.ones((h.n_items, 1), np.float32),
        user_feature_names=["log_activity"],
        item_feature_names=[],
        tag_names=["all"],
    )


# ML-100K's ranker feature groups (``ml100k_config``): the set ranked first on the ranker's
# validation, docs/results/ablation-ml100k.md: recent + genre + hist + cooc, trend off.
ML100K_GROUPS: dict[str, object] = {
    "recent_items": 5,
    "genre_recency": True,
    "hist_similarity": True,
    "cooc_neighbours": 16,
}
HEALTH_HISTORY_WINDOW = 200  # covers every Health history
HEALTH_COOC_NEIGHBOURS = 16  # 8·16 bytes per item: 154 KB at Health's 1,200 items


def health_train_config(seed: int) -> TrainConfig:
    """Health's two-stage configuration: the ranker keeps 15% of its lists (users) for
    validation, early-stops on them, and every choice below was made on that column
    (``recserve reproduce ablation --dataset health``, docs/results/ablation-health.md).

    Health has no times: a user's history is in item order, so the history window takes all of
    it (the longest training history is 181 items, the median 14)."""
    from training.ranker_train import RankerConfig

    ranker = RankerConfig(epochs=20, val_fraction=0.15, patience=3, seed=seed)
    # "cooc" (M = 16) ranks first on validation of the four feature sets, 3 seeds (hist+cooc
    # second, hist third, none last); "hist" stays off.
    return TrainConfig(
        ranker=ranker, history_window=HEALTH_HISTORY_WINDOW, cooc_neighbours=HEALTH_COOC_NEIGHBOURS, seed=seed
    )


def load(
    name: str, seed: int = 0, loss: str = DEFAULT_LOSS, k: int = 20
) -> tuple[InteractionData, TrainConfig]:
    """Data and training configuration for ``name``; ``loss`` and ``k`` (SL@K's K) override MF's."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    if name == "synthetic":
        from training.synthetic import SyntheticConfig, generate

        data, config = generate(SyntheticConfig(seed=seed)), TrainConfig(seed=seed)
        mf = dataclasses.replace(config.mf, seed=seed)
    elif name == "ml100k":
        from training.movielens import load_ml100k
        from training.reproduce_ml100k import ml100k_config

        data, config = load_ml100k(), ml100k_config(seed)
        mf = config.mf
    else:
        from training.reproduce_health import make_config

        data, config = health_as_interactions(), health_train_config(seed)
        mf = make_config(loss, seed)
    config.mf = dataclasses.replace(mf, loss=loss, k=k)
    if data.source is None:  # the synthetic generator records its own configuration
        data.source = {"dataset": name, "seed": seed}
    return data, config
