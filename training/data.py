"""The in-memory shape every data source is turned into before training."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class InteractionData:
    """Implicit-feedback interactions with side features, split into train and test.

    Indices are dense internal positions; ``user_ids`` / ``item_ids`` hold the data set's own ids
    (strings, what the API speaks). Side features are numeric matrices ready for the ranker.
    """

    name: str
    user_ids: list[str]
    item_ids: list[str]
    train_users: np.ndarray
    train_items: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    user_features: np.ndarray
    item_features: np.ndarray
    item_tags: np.ndarray
    user_feature_names: list[str] = field(default_factory=list)
    item_feature_names: list[str] = field(default_factory=list)
    tag_names: list[str] = field(default_factory=list)
    item_attributes: dict[str, list[list[str]]] = field(default_factory=dict)
    # Optional: when each training row happened (any sortable number). With it, the trainer cuts
    # its ranker/validation slice from the *end* of each user's history, as the test split does.
    train_time: np.ndarray | None = None
    # Optional: a demographic segment per user. Users with no training interactions get the mean
    # embedding (and genre profile) of the trained users of their segment instead of noise.
    user_segment: np.ndarray | None = None
    # Optional: where the data came from (file paths, column options, the ingest report), written
    # into the bundle manifest as ``training_config["data"]`` so a retrain can re-read the same file.
    source: dict[str, Any] | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def fingerprint(self) -> str:
        """sha256 over the interactions, so a bundle names exactly the data it was trained on."""
        h = hashlib.sha256()
        for arr in (self.train_users, self.train_items, self.test_users, self.test_items):
            h.update(np.ascontiguousarray(arr, np.int64).tobytes())
        h.update(str((self.n_users, self.n_items)).encode())
        return h.hexdigest()


def csr_from_pairs(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of a users × items 0/1 matrix; duplicate pairs kept once, items sorted."""
    pairs = np.unique(np.stack([users.astype(np.int64), items.astype(np.int64)], axis=1), axis=0)
    counts = np.bincount(pairs[:, 0], minlength=n_users)
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, pairs[:, 1].copy()


def history_csr(
    users: np.ndarray, items: np.ndarray, n_users: int, times: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of each user's distinct items: oldest first by each item's latest time
    when ``times`` are given (ties by row), by item index otherwise (:func:`csr_from_pairs`).

    The bundle's ``seen`` lists: in time order, their tail is the user's latest items, which
    the ranker's history features read (``recommender/history.py``).
    """
    if times is None:
        return csr_from_pairs(users, items, n_users)
    u, i = np.asarray(users, np.int64), np.asarray(items, np.int64)
    order = np.lexsort((np.arange(len(u)), times, u))
    u, i = u[order], i[order]
    _, first_rev = np.unique((u * (int(i.max(initial=0)) + 1) + i)[::-1], return_index=True)
    keep = np.zeros(len(u), bool)
    keep[len(u) - 1 - first_rev] = True  # each (user, item)'s latest row
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(u[keep], minlength=n_users), out=indptr[1:])
    return indptr, i[keep].copy()


def user_tag_profile(users: np.ndarray, items: np.ndarray, item_tags: np.ndarray, n_users: int) -> np.ndarray:
    """Each user's normalised distribution over item tags, from their interactions."""
    prof = np.zeros((n_users, item_tags.shape[1]), np.float64)
    np.add.at(prof, users, item_tags[items])
    total = prof.sum(axis=1, keepdims=True)
    return (prof / np.where(total > 0, total, 1.0)).astype(np.float32)


def split_last_fraction(
    users: np.ndarray, items: np.ndarray, order: np.ndarray, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (keep, held_out): per user, the last ``fraction`` of interactions by ``order``
    (at least one when the user has two or more) is held out."""
    idx = np.lexsort((order, users))
    u_sorted = users[idx]
    starts = np.flatnonzero(np.r_[True, u_sorted[1:] != u_sorted[:-1]])
    sizes = np.diff(np.r_[starts, len(u_sorted)])
    # vectorised (200k users in well under a second); np.round rounds half to even, like round()
    n_out = np.where(sizes >= 2, np.maximum(1, np.round(sizes * fraction)), 0).astype(np.int64)
    pos = np.arange(len(u_sorted)) - np.repeat(starts, sizes)  # position in the user's history
    held = np.zeros(len(users), bool)
    held[idx] = pos >= np.repeat(sizes - n_out, sizes)
    return ~held, held
