"""A tiny trained store to retrain from: seconds, not minutes (2 cores, other work running)."""

from __future__ import annotations

import shutil
from pathlib import Path

from model_store import LocalStore
from training.mf import MFConfig
from training.pipeline import TrainConfig, train_and_publish
from training.ranker_train import RankerConfig
from training.synthetic import SyntheticConfig, generate

TINY_DATA = SyntheticConfig(n_users=120, n_items=80, min_interactions=5, max_interactions=12, seed=3)
TINY_TRAIN = TrainConfig(
    mf=MFConfig(dim=8, epochs=3, n_negatives=16, batch_size=256, loss="sl", seed=3),
    ranker=RankerConfig(hidden_units=8, num_layers=1, epochs=1, seed=3),
    n_candidates=30,
    seed=3,
)


def publish_tiny(root: Path) -> str:
    version, _ = train_and_publish(generate(TINY_DATA), LocalStore(root), TINY_TRAIN, progress=False)
    return version


def copy_store(template: Path, root: Path) -> LocalStore:
    shutil.copytree(template, root)
    return LocalStore(root)
