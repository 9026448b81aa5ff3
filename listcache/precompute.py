"""The precompute job: every user's top-N and every item's top-N similar items, marker last.

Why a batch job: a cache hit is one Redis GET, while computing is retrieval + ranking. Running the
same :class:`~recommender.model.RecommenderModel` calls as the service, in batches, fills the
backend with exactly the lists the API would compute (``exclude_seen`` on, as in a default
request).

Write protocol, so a reader never sees half a version:

1. lists go to ``{prefix}:{version}:rec:{user_id}`` and ``…:sim:{item_id}`` with a TTL, one
   :meth:`~listcache.backend.ListBackend.set_many` per batch (Redis: one pipeline round trip per
   ``batch_size`` keys);
2. the ``{prefix}:{version}:ready`` marker is written last, and only if every batch succeeded,
   **without** a TTL. Lists carry a TTL, so under Redis's ``volatile-*`` eviction policies (the
   compose stack runs ``volatile-lru``) only lists are ever evicted, never a marker: a full Redis
   turns some hits into misses (computed, then written back) instead of turning a whole version's
   lists unreadable at once. A marker therefore means "every list was written", not "every list
   is still there"; a missing list is an ordinary miss.

The service reads a version's lists only while its marker exists. Older versions' keys are not
deleted: their lists expire by TTL and no reader looks them up (keys carry the version); their
markers (about 100 bytes each) stay until removed by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from listcache.backend import ListBackend
from listcache.codec import ready_marker
from listcache.config import DEFAULTS
from listcache.keys import list_key, ready_key

if TYPE_CHECKING:
    from recommender.idmap import IdMap
    from recommender.model import RecommenderModel

Lists = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class PrecomputeConfig:
    n: int = DEFAULTS.list_size
    ttl_s: int = DEFAULTS.ttl_s
    prefix: str = DEFAULTS.prefix
    batch_size: int = DEFAULTS.batch_size
    users: bool = True
    items: bool = True


@dataclass
class PrecomputeReport:
    version: str
    keys: int
    bytes: int
    seconds: float

    @property
    def keys_per_s(self) -> float:
        return self.keys / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "keys": self.keys,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "keys_per_s": round(self.keys_per_s, 1),
        }


def _batches(n: int, size: int) -> Iterator[np.ndarray]:
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n), dtype=np.int64)


def user_lists(model: RecommenderModel, users: np.ndarray, n: int) -> Lists:
    """Top-``n`` recommendations for a batch of users: the service's default request, batched.

    At most ``model.n_candidates`` items: asking for more would widen retrieval and rank a
    different candidate list than the service ranks for an ordinary k <= n_candidates.
    """
    n = min(n, model.n_candidates)
    return [(r.items, r.scores) for r in model.strategies.personalized.recommend(users, n, exclude_seen=True)]


def similar_lists(model: RecommenderModel, items: np.ndarray, n: int) -> Lists:
    """Top-``n`` similar items for a batch of items: the /similar-items strategy itself, batched
    (one FAISS search per batch, the same narrower beam as the service), so a stored list equals
    the online answer for the same item."""
    return [(r.items, r.scores) for r in model.strategies.similar_items.recommend(items, n)]


def precompute(
    model: RecommenderModel, backend: ListBackend, config: PrecomputeConfig, progress: bool = True
) -> PrecomputeReport:
    """Compute and write every list of ``model`` through ``backend``, marker last.

    Write failures propagate as :class:`~listcache.backend.WriteError`: a half-written version
    simply has no marker and is never read.
    """
    from tqdm import tqdm

    if config.n < 1 or config.batch_size < 1 or config.ttl_s < 1:
        raise ValueError("n, batch_size and ttl_s must be >= 1")
    started = time.perf_counter()
    jobs: list[tuple[str, int, IdMap, Callable[[RecommenderModel, np.ndarray, int], Lists]]] = []
    if config.users:
        jobs.append(("rec", model.n_users, model.user_ids, user_lists))
    if config.items:
        jobs.append(("sim", model.n_items, model.item_ids, similar_lists))
    total = sum(j[1] for j in jobs)
    keys = size = 0
    with tqdm(total=total, unit="key", disable=not progress, desc=f"precompute {model.version}") as bar:
        for kind, count, ids, compute in jobs:
            for batch in _batches(count, config.batch_size):
                lists = compute(model, batch, config.n)
                writes = (
                    (list_key(config.prefix, model.version, kind, ext), items, scores)
                    for ext, (items, scores) in zip(ids.externals(batch.tolist()), lists, strict=True)
                )
                size += backend.set_many(writes, config.ttl_s)
                keys += len(batch)
                bar.update(len(batch))
    elapsed = time.perf_counter() - started
    marker = ready_marker(
        config.n, model.n_users if config.users else 0, model.n_items if config.items else 0, elapsed
    )
    backend.mark_ready(ready_key(config.prefix, model.version), marker, None)  # no TTL: never evicted
    return PrecomputeReport(model.version, keys, size, time.perf_counter() - started)
