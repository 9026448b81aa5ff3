"""Your own files → :class:`~training.data.InteractionData`, the shape every trainer takes.

The same route as MovieLens-100K (``training/movielens.py``): item attributes for request-time
filters, item tags for ``tag_affinity``, user and item side features for the ranker, per-user
time split, ``train_time`` so the trainer cuts its validation slice from the end of each user's
training history. :class:`DataSpec` is what the bundle manifest records (``training_config.data``)
so a later retrain can read the same files with the same options.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.data import InteractionData
from training.ingest.log import LogColumns, LogFilters, Pairs, collapse, read_log, split_by_time
from training.ingest.reader import DataError
from training.ingest.side import SideInfo, read_side


@dataclass(frozen=True)
class DataSpec:
    """Everything needed to turn files into training data; round-trips through the manifest."""

    interactions: str
    columns: LogColumns = field(default_factory=LogColumns)
    time_required: bool = False  # --time-col given: its absence is an error, not "no times"
    filters: LogFilters = field(default_factory=LogFilters)
    test_fraction: float = 0.2
    items: str | None = None
    item_id_col: str | None = None  # default: the interactions' item column name
    users: str | None = None
    user_id_col: str | None = None
    list_sep: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["columns"] = LogColumns(**d.get("columns", {}))
        known["filters"] = LogFilters(**d.get("filters", {}))
        return cls(**known)


def file_digest(path: str | Path) -> dict[str, Any]:
    """Size and sha256 of a file, so a retrain can tell whether the data changed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return {"path": str(Path(path).resolve()), "bytes": Path(path).stat().st_size, "sha256": h.hexdigest()}


def load_pairs(spec: DataSpec, progress: bool = True) -> Pairs:
    """Read, collapse and filter the interactions file (no split, no side files)."""
    log = read_log(spec.interactions, spec.columns, spec.time_required, progress)
    pairs = collapse(log, spec.filters, progress)
    # Time order, ties by first appearance in the file: the order the trainer's own
    # validation split (which breaks ties by position) then inherits.
    order = np.lexsort((pairs.first_row, pairs.time))
    for name in ("users", "items", "weight", "time", "first_row"):
        setattr(pairs, name, getattr(pairs, name)[order])
    return pairs


def load_interactions(spec: DataSpec, progress: bool = True) -> tuple[InteractionData, dict[str, Any]]:
    """Training data and the ingest report (every dropped row by reason, the split, side files)."""
    pairs = load_pairs(spec, progress)
    test = split_by_time(pairs, spec.test_fraction, progress)
    report = dict(pairs.report)
    report["split"] = {
        "test_fraction": spec.test_fraction,
        "train": int((~test).sum()),
        "test": int(test.sum()),
        "test_users": len(np.unique(pairs.users[test])),
    }
    n_users, n_items = len(pairs.user_ids), len(pairs.item_ids)
    item_side = user_side = None
    if spec.items:
        col = spec.item_id_col or spec.columns.item_col
        item_side = read_side(spec.items, col, pairs.item_ids, "item", spec.list_sep, progress)
        report["items_file"] = item_side.report
    if spec.users:
        col = spec.user_id_col or spec.columns.user_col
        user_side = read_side(spec.users, col, pairs.user_ids, "user", spec.list_sep, progress)
        report["users_file"] = user_side.report
    train_u, train_i = pairs.users[~test], pairs.items[~test]
    # Activity from training rows only, so no test interaction leaks into a feature.
    activity = np.log1p(np.bincount(train_u, minlength=n_users)).astype(np.float32)[:, None]
    user_features, user_names = _with(user_side, n_users)
    item_features, item_names = _with(item_side, n_items)
    # Absolute paths, so a retrain from any working directory reads the same files.
    absolute = {
        k: str(Path(v).resolve()) for k in ("interactions", "items", "users") if (v := getattr(spec, k))
    }
    source = replace(spec, **absolute).to_dict()
    source["files"] = {"interactions": file_digest(spec.interactions)}
    for key in ("items", "users"):
        if getattr(spec, key):
            source["files"][key] = file_digest(getattr(spec, key))
    source["report"] = report
    data = InteractionData(
        name=Path(spec.interactions).name,
        user_ids=pairs.user_ids,
        item_ids=pairs.item_ids,
        train_users=train_u,
        train_items=train_i,
        test_users=pairs.users[test],
        test_items=pairs.items[test],
        user_features=np.concatenate([user_features, activity], axis=1),
        item_features=item_features,
        item_tags=item_side.tags if item_side else np.ones((n_items, 1), np.float32),
        user_feature_names=[*user_names, "log_activity"],
        item_feature_names=item_names,
        tag_names=item_side.tag_names if item_side else ["all"],
        item_attributes=item_side.attributes if item_side else {},
        train_time=pairs.time[~test],
        source=source,
    )
    return data, report


def check_trainable(data: InteractionData) -> None:
    """Refuse data the two-stage trainer cannot learn from, with the reason (not NaN metrics).

    The ranker learns on the last part of each user's training history, so at least one user
    needs two or more training interactions.
    """
    counts = np.bincount(data.train_users, minlength=data.n_users)
    if not (counts >= 2).any():
        raise DataError(
            f"{data.source['interactions'] if data.source else data.name}: too little data to train: "
            f"no user has 2 or more training interactions ({len(data.train_users)} training, "
            f"{len(data.test_users)} test pairs); the ranker's validation slice is cut from them"
        )


def _with(side: SideInfo | None, n: int) -> tuple[np.ndarray, list[str]]:
    if side is None:
        return np.zeros((n, 0), np.float32), []
    return side.features, list(side.feature_names)


def file_train_config(
    seed: int = 0, loss: str = "slatk", k: int = 20, epochs: int = 20, dim: int = 64, ranker_epochs: int = 20
):
    """The training configuration for a file: MovieLens-100K's documented one, made generic.

    (docs/results/ml100k.md: SL@K MF, ranker early-stopped on 15% of the validation users,
    the recent-items similarity feature.) Returns a :class:`~training.pipeline.TrainConfig`.
    """
    from training.mf import MFConfig
    from training.pipeline import TrainConfig
    from training.ranker_train import RankerConfig

    return TrainConfig(
        mf=MFConfig(dim=dim, epochs=epochs, loss=loss, k=k, seed=seed),
        ranker=RankerConfig(epochs=ranker_epochs, val_fraction=0.15, patience=3, seed=seed),
        recent_items=5,
        seed=seed,
    )
