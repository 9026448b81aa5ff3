"""The precompute batch job: every user's top-N and every item's top-N similar items, into Redis.

Why a batch job: a cache hit is one Redis GET, while computing is retrieval + ranking. Running the
same :class:`~recommender.model.RecommenderModel` code as the service, in batches, fills Redis
with exactly the lists the API would compute (``exclude_seen`` on, as in a default request).

Write protocol, so a reader never sees half a version:

1. lists go to ``{prefix}:{version}:rec:{user_id}`` and ``…:sim:{item_id}`` with a TTL, one
   non-transactional pipeline per batch (one round trip per ``batch_size`` keys);
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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.model import RecommenderModel
from service.cache import encode_list, list_key, ready_key, ready_marker


@dataclass(frozen=True)
class PrecomputeConfig:
    n: int = 100
    ttl_s: int = 86_400
    prefix: str = "recserve"
    batch_size: int = 256
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


def user_lists(model: RecommenderModel, users: np.ndarray, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Top-``n`` recommendations for a batch of users: the service's default request, batched.

    At most ``model.n_candidates`` items: asking for more would widen retrieval and rank a
    different candidate list than the service ranks for an ordinary k <= n_candidates.
    """
    n = min(n, model.n_candidates)
    return [(r.items, r.scores) for r in model.recommend(users, n, exclude_seen=True)]


def similar_lists(model: RecommenderModel, items: np.ndarray, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Top-``n`` similar items for a batch of items.

    Same call as :meth:`RecommenderModel.similar` (retrieve with the item itself excluded), made
    for a whole batch at once: one FAISS search instead of one per item.
    """
    cand, score, valid = model.retrieve(model.item_emb[items], n, [np.array([i]) for i in items.tolist()])
    out = []
    for r in range(len(items)):
        m = int(valid[r].sum())
        out.append((cand[r, :m], score[r, :m]))
    return out


def precompute(
    model: RecommenderModel, client: Any, config: PrecomputeConfig, progress: bool = True
) -> PrecomputeReport:
    """Compute and write every list of ``model`` to ``client`` (a ``redis.Redis``), marker last.

    Redis errors propagate: a half-written version simply has no marker and is never read.
    """
    from tqdm import tqdm

    if config.n < 1 or config.batch_size < 1 or config.ttl_s < 1:
        raise ValueError("n, batch_size and ttl_s must be >= 1")
    started = time.perf_counter()
    jobs = []
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
                pipe = client.pipeline(transaction=False)
                for ext, (items, scores) in zip(ids.externals(batch.tolist()), lists, strict=True):
                    blob = encode_list(items, scores)
                    size += len(blob)
                    pipe.set(list_key(config.prefix, model.version, kind, ext), blob, ex=config.ttl_s)
                pipe.execute()
                keys += len(batch)
                bar.update(len(batch))
    elapsed = time.perf_counter() - started
    marker = ready_marker(
        config.n, model.n_users if config.users else 0, model.n_items if config.items else 0, elapsed
    )
    client.set(ready_key(config.prefix, model.version), marker)  # no TTL: never evicted, see above
    return PrecomputeReport(model.version, keys, size, time.perf_counter() - started)
