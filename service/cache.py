"""Precomputed top-N lists: one small cache interface, two backends, and the rule for using them.

The service answers from a cached list when it can and computes otherwise; nothing here may ever
turn a request into an error. Two backends share one interface (:class:`CacheBackend`):

* :class:`RedisBackend` — lists written by ``recserve precompute`` (and by the service on a miss).
  redis-py with hiredis, short socket timeouts, no client-side retries and a
  :class:`CircuitBreaker`, so an outage costs at most a few timeouts before the service stops
  asking; every failure is counted in ``recserve_redis_errors_total``.
* :class:`MemoryBackend` — a cachetools LRU in this process, the embedded default when no
  ``RECSERVE_REDIS_URL`` is set: filled by the service itself on misses.

Keys carry the model version (``{prefix}:{version}:rec:{user_id}``), so a model swap can never
serve another model's list. Values are a packed little-endian blob (see :func:`encode_list`):
internal item indices and float32 scores, 8 bytes per item — about 5x smaller than JSON with
external ids, and decoded with two ``np.frombuffer`` calls. Indices are only meaningful for the
version in the key, which is exactly the version the reader holds.

:func:`answer_from_cached` is the one rule for "can this cached list answer this request?",
kept pure so request options (exclusions, filters) can be wired to it without touching Redis.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from cachetools import LRUCache

from service.metrics import Metrics

log = logging.getLogger("recserve.cache")

KINDS = ("rec", "sim")
FORMAT_VERSION = 1
_HEADER = struct.Struct("<BxxxI")  # format version, 3 pad bytes (keeps arrays 4-aligned), count

T = TypeVar("T", bound=Sequence[Any])


# -- keys and values -----------------------------------------------------------------------------
def list_key(prefix: str, version: str, kind: str, key_id: str) -> str:
    """``{prefix}:{version}:{kind}:{id}``; ``kind`` is ``rec`` (per user) or ``sim`` (per item)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return f"{prefix}:{version}:{kind}:{key_id}"


def ready_key(prefix: str, version: str) -> str:
    """The marker written last by the precompute job: its presence means the lists are complete."""
    return f"{prefix}:{version}:ready"


def encode_list(items: np.ndarray, scores: np.ndarray) -> bytes:
    """Pack a list as ``header | int32 indices[n] | float32 scores[n]`` (8 + 8n bytes)."""
    items = np.asarray(items)
    scores = np.asarray(scores)
    if items.shape != scores.shape or items.ndim != 1:
        raise ValueError(f"items and scores must be 1-D and equally long, got {items.shape}, {scores.shape}")
    return (
        _HEADER.pack(FORMAT_VERSION, len(items))
        + items.astype("<i4", copy=False).tobytes()
        + scores.astype("<f4", copy=False).tobytes()
    )


class DecodeError(ValueError):
    """A cached value that is not a list this build wrote (truncated, other format, bad index)."""


def decode_list(blob: bytes, n_items: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_list`; with ``n_items``, also reject indices outside the catalogue."""
    if len(blob) < _HEADER.size:
        raise DecodeError(f"value of {len(blob)} bytes is shorter than the header")
    fmt, n = _HEADER.unpack_from(blob)
    if fmt != FORMAT_VERSION:
        raise DecodeError(f"unknown list format {fmt}")
    if len(blob) != _HEADER.size + 8 * n:
        raise DecodeError(f"value of {len(blob)} bytes does not hold {n} items")
    items = np.frombuffer(blob, "<i4", n, _HEADER.size)
    scores = np.frombuffer(blob, "<f4", n, _HEADER.size + 4 * n)
    if n_items is not None and n and (items.min() < 0 or items.max() >= n_items):
        raise DecodeError(f"item index outside 0..{n_items - 1}")
    return items, scores


# -- the rule --------------------------------------------------------------------------------------
def answer_from_cached(
    cached_items: Iterable[T],
    k: int,
    excluded_ids: set[str] | frozenset[str] = frozenset(),
    allowed: Callable[[str], bool] | None = None,
) -> list[T] | None:
    """The top ``k`` of a cached best-first list after request-time exclusions and filters, or None.

    ``cached_items`` yields entries whose first element is the external item id (e.g.
    ``(item_id, score)``), best first. Entries in ``excluded_ids`` or refused by ``allowed`` are
    dropped; if at least ``k`` survive, the first ``k`` are the answer, else None (compute online).

    Why this is exact rather than a guess: the cached list is the top N of the full ranking. If
    ``k`` entries survive the filter inside it, every item outside it scores below all of them, so
    they are also the top ``k`` survivors of the full ranking. When fewer survive, items beyond
    position N could belong in the answer and only an online computation can find them.
    "Full ranking" means the one computed *without* the exclusions: an online computation that
    removes items before ranking shifts the ranker's ``retrieval_rank`` feature and can order the
    rest differently (on the synthetic default, 78 of 100 users got the identical top 10 with 5
    exclusions). Online exclusions applied after ranking would make the two paths agree exactly.
    Options that change the ranking itself (``exclude_seen=false``, recent items, diversity) must
    not come here at all: the caller bypasses the cache for them.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out: list[T] = []
    for entry in cached_items:
        item_id = entry[0]
        if item_id in excluded_ids or (allowed is not None and not allowed(item_id)):
            continue
        out.append(entry)
        if len(out) == k:
            return out
    return None


# -- circuit breaker -------------------------------------------------------------------------------
class CircuitBreaker:
    """Stop calling a failing dependency for ``reset_after_s`` after ``failure_threshold`` failures.

    Closed: calls go through; consecutive failures are counted. Open: :meth:`allow` says no until
    ``reset_after_s`` has passed, so an outage costs ``failure_threshold`` timeouts, not one per
    request. Half-open: one trial call is let through; success closes the breaker (the service
    recovers by itself), failure re-opens it for another period.

    Hand-written rather than a library (pybreaker): it is 40 lines, takes an injectable clock so
    tests need no sleeping, and wraps no function — the backend records outcomes itself.
    """

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_after_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "open" if self._clock() - self._opened_at < self.reset_after_s else "half-open"

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self.reset_after_s or self._trial_in_flight:
                return False
            self._trial_in_flight = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_in_flight or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial_in_flight = False


# -- backends --------------------------------------------------------------------------------------
Entry = tuple[np.ndarray, np.ndarray]


class CacheBackend(Protocol):
    """Where lists live. Every method swallows its own failures: a cache never raises."""

    name: str

    def ready(self, version: str) -> bool:
        """May lists of ``version`` be read from here?"""
        ...

    def get(self, key: str, n_items: int) -> Entry | None: ...

    def set(self, key: str, items: np.ndarray, scores: np.ndarray) -> None: ...

    def close(self) -> None: ...


class MemoryBackend:
    """cachetools LRU of decoded lists in this process; always ready, filled on misses.

    A lock guards the LRU because cachetools is not thread-safe and sync endpoints run in a
    thread pool. Entries are stored decoded (no encoding cost): they never leave the process.
    """

    name = "memory"

    def __init__(self, maxsize: int) -> None:
        self._lru: LRUCache[str, Entry] = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()

    def ready(self, version: str) -> bool:
        return True

    def get(self, key: str, n_items: int) -> Entry | None:
        with self._lock:
            return self._lru.get(key)

    def set(self, key: str, items: np.ndarray, scores: np.ndarray) -> None:
        entry = (np.array(items, np.int32), np.array(scores, np.float32))
        with self._lock:
            self._lru[key] = entry

    def __len__(self) -> int:
        return len(self._lru)

    def close(self) -> None:
        with self._lock:
            self._lru.clear()


class RedisBackend:
    """Lists in Redis, read only for versions whose ``ready`` marker exists.

    Failure policy: every operation is one round trip with a short socket timeout and no client
    retries (redis-py's default would retry 3 times with backoff: an outage would cost 4
    timeouts per request). Errors are counted by operation and feed the circuit breaker; while
    it is open no call is made at all. The ready marker is re-checked every ``ready_check_s`` so
    the common path is a single GET.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        prefix: str,
        metrics: Metrics,
        ttl_s: int,
        socket_timeout_s: float = 0.05,
        connect_timeout_s: float = 0.1,
        breaker: CircuitBreaker | None = None,
        ready_check_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.prefix = prefix
        self.metrics = metrics
        self.ttl_s = ttl_s
        self.breaker = breaker or CircuitBreaker()
        self.ready_check_s = ready_check_s
        self._clock = clock
        self._ready: dict[str, tuple[bool, float]] = {}
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )

    def _call(self, op: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """Run one Redis call under the breaker: (ok, result); failures are counted, not raised."""
        if not self.breaker.allow():
            return False, None
        try:
            result = fn()
        except self._errors as exc:
            self.breaker.record_failure()
            self.metrics.redis_errors.labels(op).inc()
            log.debug("redis %s failed: %s", op, exc)
            return False, None
        self.breaker.record_success()
        return True, result

    def ready(self, version: str) -> bool:
        now = self._clock()
        known = self._ready.get(version)
        if known is not None and now - known[1] < self.ready_check_s:
            return known[0]
        ok, exists = self._call("ready", lambda: self.client.exists(ready_key(self.prefix, version)))
        if not ok:
            return False  # unknown: do not cache the answer, ask again once Redis is reachable
        self._ready = {version: (bool(exists), now)}  # only the serving version matters
        return bool(exists)

    def get(self, key: str, n_items: int) -> Entry | None:
        ok, blob = self._call("get", lambda: self.client.get(key))
        if not ok or blob is None:
            return None
        try:
            return decode_list(blob, n_items)
        except DecodeError as exc:
            self.metrics.redis_errors.labels("decode").inc()
            log.warning("ignoring undecodable cached list %s: %s", key, exc)
            return None

    def set(self, key: str, items: np.ndarray, scores: np.ndarray) -> None:
        blob = encode_list(items, scores)
        self._call("set", lambda: self.client.set(key, blob, ex=self.ttl_s))

    def close(self) -> None:
        self.client.close()


# -- what the pipeline talks to ---------------------------------------------------------------------
@dataclass
class Lookup:
    """Outcome of :meth:`ListCache.lookup`: ``items`` is the answer on a hit, else None."""

    items: list[tuple[str, float]] | None
    result: str  # hit | miss | bypass | unavailable


class ListCache:
    """The pipeline's view of the cache: look up first, compute on a miss, write the N-list back.

    ``list_size`` (N) is how long stored lists are. On a miss the pipeline computes N items (not
    k) when k <= N, so the stored list serves any later k <= N for the same user or item; the
    first ``k`` of a top-N computation are exactly the top-``k`` computation (same candidates,
    deterministic ties), so computing N costs a few microseconds of selection and changes nothing.

    Write-back: always for the in-process LRU (its only way to fill); for Redis only while the
    version's ``ready`` marker exists (``write_back`` setting) — that repairs evicted or expired
    keys without ever writing lists for a version the precompute job has not covered.
    """

    def __init__(
        self, backend: CacheBackend, metrics: Metrics, list_size: int, write_back: bool = True
    ) -> None:
        if list_size < 1:
            raise ValueError(f"list_size must be >= 1, got {list_size}")
        self.backend = backend
        self.metrics = metrics
        self.list_size = list_size
        self.write_back = write_back
        self.prefix = getattr(backend, "prefix", "recserve")

    def compute_k(self, k: int, cacheable: bool = True) -> int:
        """How many items to compute on a miss: N when the result will be stored, else k."""
        return self.list_size if cacheable and k <= self.list_size else k

    def lookup(
        self,
        endpoint: str,
        kind: str,
        version: str,
        key_id: str,
        item_ids: Any,
        n_items: int,
        k: int,
        *,
        cacheable: bool = True,
        excluded_ids: set[str] | frozenset[str] = frozenset(),
        allowed: Callable[[str], bool] | None = None,
    ) -> Lookup:
        """Answer from the cache if possible; counts the outcome in ``recserve_cache_requests_total``.

        ``item_ids`` is the model's item :class:`~recommender.idmap.IdMap` (indices → external ids).
        """
        outcome = self._lookup(kind, version, key_id, item_ids, n_items, k, cacheable, excluded_ids, allowed)
        self.metrics.cache.labels(endpoint, outcome.result).inc()
        return outcome

    def _lookup(
        self,
        kind: str,
        version: str,
        key_id: str,
        item_ids: Any,
        n_items: int,
        k: int,
        cacheable: bool,
        excluded_ids: set[str] | frozenset[str],
        allowed: Callable[[str], bool] | None,
    ) -> Lookup:
        if not cacheable or k > self.list_size:
            return Lookup(None, "bypass")
        if not self.backend.ready(version):
            return Lookup(None, "unavailable")
        entry = self.backend.get(list_key(self.prefix, version, kind, key_id), n_items)
        if entry is None:
            return Lookup(None, "miss")
        idx, scores = entry
        pairs = zip(item_ids.externals(idx.tolist()), scores.tolist(), strict=True)
        items = answer_from_cached(pairs, k, excluded_ids, allowed)
        return Lookup(items, "hit" if items is not None else "miss")

    def store(
        self, kind: str, version: str, key_id: str, items: np.ndarray, scores: np.ndarray, k: int
    ) -> None:
        """Write back a list computed on a miss (only full N-lists of cacheable requests)."""
        if not self.write_back or k > self.list_size or not self.backend.ready(version):
            return
        self.backend.set(list_key(self.prefix, version, kind, key_id), items, scores)

    def close(self) -> None:
        self.backend.close()


def build_cache(settings: Any, metrics: Metrics) -> ListCache | None:
    """The cache the settings ask for: Redis if ``redis_url`` is set, else the LRU, else none."""
    if settings.redis_url:
        backend: CacheBackend = RedisBackend(
            settings.redis_url,
            settings.redis_prefix,
            metrics,
            ttl_s=settings.redis_ttl_s,
            socket_timeout_s=settings.redis_socket_timeout_s,
            connect_timeout_s=settings.redis_connect_timeout_s,
            breaker=CircuitBreaker(settings.redis_breaker_failures, settings.redis_breaker_reset_s),
            ready_check_s=settings.redis_ready_check_s,
        )
        return ListCache(backend, metrics, settings.cache_list_size, settings.redis_write_back)
    if settings.cache_size > 0:
        return ListCache(MemoryBackend(settings.cache_size), metrics, settings.cache_list_size)
    return None


def ready_marker(n: int, users: int, items: int, seconds: float) -> bytes:
    """The ``ready`` marker's value: what was written, for operators reading Redis by hand."""
    return json.dumps(
        {"n": n, "users": users, "items": items, "seconds": round(seconds, 3), "format": FORMAT_VERSION},
        sort_keys=True,
    ).encode()
