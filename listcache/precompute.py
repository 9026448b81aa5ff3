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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from listcache.backend import ListBackend, ListWrite
from listcache.codec import ready_marker
from listcache.config import DEFAULTS
from listcache.keys import list_key, ready_key

if TYPE_CHECKING:
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


@dataclass(frozen=True)
class Block:
    """One unit of work, and of the write protocol: a run of users (``rec``) or items (``sim``).

    Both engines cut the job into the same blocks and compute each with the same batched call,
    so a list never depends on the engine (a batch's float arithmetic could, in the last bit, on
    how the batch is cut). The Ray engine counts written keys per block before it writes the
    marker.
    """

    kind: str
    start: int
    stop: int

    @property
    def rows(self) -> np.ndarray:
        return np.arange(self.start, self.stop, dtype=np.int64)

    def __len__(self) -> int:
        return self.stop - self.start


def plan(n_users: int, n_items: int, config: PrecomputeConfig) -> list[Block]:
    """Every block of a job, users first, ``config.batch_size`` rows each (the last may be short)."""
    counts = [("rec", n_users if config.users else 0), ("sim", n_items if config.items else 0)]
    size = config.batch_size
    return [Block(kind, s, min(s + size, count)) for kind, count in counts for s in range(0, count, size)]


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


def block_lists(model: RecommenderModel, block: Block, config: PrecomputeConfig) -> list[ListWrite]:
    """The lists of one block, keyed: what either engine writes for it."""
    compute, ids = (user_lists, model.user_ids) if block.kind == "rec" else (similar_lists, model.item_ids)
    rows = block.rows
    lists = compute(model, rows, config.n)
    return [
        (list_key(config.prefix, model.version, block.kind, ext), items, scores)
        for ext, (items, scores) in zip(ids.externals(rows.tolist()), lists, strict=True)
    ]


def mark_ready(
    backend: ListBackend, config: PrecomputeConfig, version: str, n_users: int, n_items: int, started: float
) -> float:
    """Write the version's marker (call only once every list is written); returns the job's seconds.

    No TTL: lists carry one, so a ``volatile-*`` eviction policy evicts lists, never the marker
    (see the module docstring).
    """
    elapsed = time.perf_counter() - started
    marker = ready_marker(config.n, n_users if config.users else 0, n_items if config.items else 0, elapsed)
    backend.mark_ready(ready_key(config.prefix, version), marker, None)  # no TTL: never evicted
    return elapsed


def check_config(config: PrecomputeConfig) -> None:
    if config.n < 1 or config.batch_size < 1 or config.ttl_s < 1:
        raise ValueError("n, batch_size and ttl_s must be >= 1")


def precompute(
    model: RecommenderModel, backend: ListBackend, config: PrecomputeConfig, progress: bool = True
) -> PrecomputeReport:
    """Compute and write every list of ``model`` through ``backend`` in this process, marker last.

    Write failures propagate as :class:`~listcache.backend.WriteError`: a half-written version
    simply has no marker and is never read. (``listcache.ray_engine`` runs the same blocks on a
    Ray cluster.)
    """
    from tqdm import tqdm

    check_config(config)
    started = time.perf_counter()
    blocks = plan(model.n_users, model.n_items, config)
    keys = size = 0
    with tqdm(
        total=sum(map(len, blocks)), unit="key", disable=not progress, desc=f"precompute {model.version}"
    ) as bar:
        for block in blocks:
            size += backend.set_many(block_lists(model, block, config), config.ttl_s)
            keys += len(block)
            bar.update(len(block))
    mark_ready(backend, config, model.version, model.n_users, model.n_items, started)
    return PrecomputeReport(model.version, keys, size, time.perf_counter() - started)
