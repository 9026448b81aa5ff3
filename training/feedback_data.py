"""Base data + feedback events → the :class:`InteractionData` a retrain trains on.

The base is what the serving bundle was trained on, as its manifest records it
(``training_config["data"]``): a data-set name (``synthetic`` with its generator settings,
``ml100k``, ``health``) or an interactions file (``recserve train --interactions``; its
:class:`training.ingest.build.DataSpec` is recorded, and :func:`base_from_file` re-reads it).
Events are added to the *training* interactions only: the test split stays the base's, so a
retrained model's offline metrics compare with its predecessor's.

Which events become training pairs: those whose type is a positive one
(``feedback_positive_types``: click, purchase, like by default); views and dislikes are kept in
the event store but not trained on (MF here learns from positives only). Weights are stored,
not used by this trainer. Users and items the base does not know are added: a new user's side
features are the mean user's (as a cold-start query gets), a new item's are zeros, with no tags
and no filter attributes (it matches no attribute filter until the base data describes it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from eventstore import StoredEvent
from recommender.retrieval import HNSWParams
from training.data import InteractionData
from training.mf import MFConfig
from training.pipeline import TrainConfig
from training.ranker_train import RankerConfig

log = logging.getLogger("recserve.retrain")


class RetrainError(Exception):
    """The base data cannot be rebuilt from the manifest (one line for the CLI)."""


@dataclass(frozen=True)
class EventStats:
    read: int  # events up to the watermark
    used: int  # of those, training pairs added (positive types)
    new_users: int
    new_items: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def train_config_from(recorded: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` a manifest's ``training_config`` records (``asdict`` of one)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in recorded.items() if k in known}
    try:
        nested = {
            "mf": MFConfig(**values.pop("mf", {})),
            "ranker": RankerConfig(**values.pop("ranker", {})),
            "hnsw": HNSWParams(**values.pop("hnsw", {})),
        }
        return TrainConfig(**values, **nested)
    except TypeError as exc:
        raise RetrainError(f"the manifest's training_config does not fit this build: {exc}") from exc


def base_data(data: dict[str, Any] | None, version: str) -> InteractionData:
    """The base the manifest's ``training_config["data"]`` names (its ``events`` part ignored)."""
    if not isinstance(data, dict) or not data:
        raise RetrainError(
            f"model {version} records no base data (published before retrain existed, or by hand): "
            "run `recserve train` once, then retrain"
        )
    if "interactions" in data:
        return base_from_file(data)
    name = data.get("dataset")
    if name == "synthetic" and isinstance(data.get("synthetic"), dict):
        from training.synthetic import SyntheticConfig, generate

        return generate(SyntheticConfig(**data["synthetic"]))
    if name in ("synthetic", "ml100k", "health"):
        from training import datasets

        base, _ = datasets.load(name, seed=int(data.get("seed", 0)))
        return base
    raise RetrainError(f"model {version}: unknown base data {data!r}")


def base_from_file(data: dict[str, Any]) -> InteractionData:
    """Re-read the interactions file a ``recserve train --interactions`` bundle records.

    The one place that knows the file form; it needs ``training.ingest`` (``recserve train
    --interactions``), which records its ``DataSpec`` in the manifest.
    """
    try:
        from training.ingest.build import DataSpec, file_digest, load_interactions  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RetrainError(
            f"the base data is the file {data.get('interactions')}, and this build cannot read "
            "interactions files (no training.ingest)"
        ) from exc
    recorded = (data.get("files") or {}).get("interactions") or {}
    if recorded.get("sha256") and file_digest(data["interactions"])["sha256"] != recorded["sha256"]:
        log.warning(
            "%s changed since the serving model was trained on it; retraining on it as it is now",
            data["interactions"],
        )
    base, _ = load_interactions(DataSpec.from_dict(data), progress=False)
    return base


def with_events(
    data: InteractionData, events: Iterable[StoredEvent], positive_types: Collection[str]
) -> tuple[InteractionData, EventStats]:
    """``data`` plus the positive events as training interactions (new users and items added)."""
    users = {u: i for i, u in enumerate(data.user_ids)}
    items = {it: i for i, it in enumerate(data.item_ids)}
    user_ids, item_ids = list(data.user_ids), list(data.item_ids)
    pairs_u: list[int] = []
    pairs_i: list[int] = []
    times: list[float] = []
    read = 0
    for e in events:
        read += 1
        if e.type not in positive_types:
            continue
        for table, ids, key in ((users, user_ids, e.user_id), (items, item_ids, e.item_id)):
            if key not in table:
                table[key] = len(ids)
                ids.append(key)
        pairs_u.append(users[e.user_id])
        pairs_i.append(items[e.item_id])
        times.append(e.timestamp)
    new_u, new_i = len(user_ids) - data.n_users, len(item_ids) - data.n_items
    stats = EventStats(read=read, used=len(pairs_u), new_users=new_u, new_items=new_i)
    if not pairs_u:
        return data, stats
    uf, itf = data.user_features, data.item_features
    segment = data.user_segment
    if segment is not None and new_u:
        segment = np.concatenate([segment, np.full(new_u, -1).astype(segment.dtype)])
    merged = dataclasses.replace(
        data,
        user_ids=user_ids,
        item_ids=item_ids,
        train_users=np.concatenate([data.train_users, np.array(pairs_u, data.train_users.dtype)]),
        train_items=np.concatenate([data.train_items, np.array(pairs_i, data.train_items.dtype)]),
        user_features=np.concatenate([uf, np.repeat(uf.mean(axis=0, keepdims=True), new_u, axis=0)]).astype(
            uf.dtype
        ),
        item_features=np.concatenate([itf, np.zeros((new_i, itf.shape[1]), itf.dtype)]),
        item_tags=np.concatenate(
            [data.item_tags, np.zeros((new_i, data.item_tags.shape[1]), data.item_tags.dtype)]
        ),
        item_attributes={
            name: [*values, *([] for _ in range(new_i))] for name, values in data.item_attributes.items()
        },
        train_time=None if data.train_time is None else np.concatenate([data.train_time, np.array(times)]),
        user_segment=segment,
    )
    return merged, stats
