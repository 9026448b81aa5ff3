"""``get_or_compute``: the one place that owns the cache rules of the serving path.

The rules, all here:

* **cacheable?** The caller says whether a stored list can answer the query at all (stored
  lists are the plain top N: a user's with seen items excluded, an item's without itself);
  ``k > N`` cannot be answered from N items either. Anything else bypasses the cache.
* **lookup** on internal indices: the stored int32 indices are post-filtered with the request's
  excluded indices and item-filter mask directly (``listcache.rule``); ids are mapped to
  strings once, by the presenter.
* **how many to compute on a miss:** N instead of k when the result will be stored (no request
  exclusions or filter), but never more than ``max_n`` (the model's candidate count for
  recommendations: more would widen retrieval and rank a different candidate list). The first
  k of a top-N computation are the top-k computation (same candidates, deterministic ties), so
  this costs a few µs of selection and changes nothing.
* **write-back:** the N-list, through :meth:`listcache.ListCache.store` (which only writes
  while the version is ready).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from listcache import CircuitBreaker, ListCache, Lookup, MemoryBackend, StoredList
from recommender.model import Recommendations
from service.answers import Source
from service.metrics import Metrics
from service.settings import Settings
from service.tracing import Tracing


@dataclass(frozen=True)
class ListRequest:
    """One list the serving path needs: its cache key, k, and what the request filters out."""

    endpoint: str  # metrics label: recommend | similar
    kind: str  # listcache kind: rec | sim
    key_id: str  # external user or item id
    k: int
    cacheable: bool  # may a stored list (post-filtered) answer this request?
    excluded: np.ndarray  # the request's excluded item indices
    allowed: np.ndarray | None  # the request's item-filter mask (None = every item)
    max_n: int | None = None  # never compute more than this many on a miss

    @property
    def storable(self) -> bool:
        """Is a computed answer the stored list itself (no request exclusions, no filter)?"""
        return self.cacheable and len(self.excluded) == 0 and self.allowed is None


@dataclass(frozen=True)
class Read:
    """A stored list a request's plan reads (see :meth:`CachedLists.plan_steps`)."""

    key: str
    n_items: int


@dataclass(frozen=True)
class Plan:
    """What :meth:`CachedLists.plan` decided: a stored ``answer``, else compute ``n`` items
    (and ``store`` them: the full N-list of a request a stored list could have answered)."""

    answer: Recommendations | None
    n: int
    store: bool


def head(rec: Recommendations, k: int) -> Recommendations:
    return Recommendations(rec.items[:k], rec.scores[:k], rec.retrieval_scores[:k])


class CachedLists:
    """The serving path's view of the list cache (None = no cache: everything is computed)."""

    def __init__(self, cache: ListCache | None, metrics: Metrics, tracing: Tracing | None = None) -> None:
        self.cache = cache
        self.metrics = metrics
        self.tracing = tracing or Tracing(None)

    def get_or_compute(
        self, version: str, n_items: int, req: ListRequest, compute: Callable[[int], Recommendations]
    ) -> tuple[Recommendations, Source]:
        """The answer for ``req`` from a stored list, else ``compute(n)`` (written back when full)."""
        plan = self.plan(version, n_items, req)
        if plan.answer is not None:
            return plan.answer, "cache"
        return self.finish(version, req, plan, compute(plan.n))

    def plan(self, version: str, n_items: int, req: ListRequest) -> Plan:
        """The cache's half of :meth:`get_or_compute`: the stored answer, or how many to compute
        (and whether to store them). Split so a batch can compute many requests' lists at once."""
        steps = self.plan_steps(version, n_items, req)
        try:
            read = next(steps)
            assert self.cache is not None
            steps.send(self.cache.backend.get(read.key, read.n_items))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        raise RuntimeError("plan_steps read twice")

    def plan_steps(
        self, version: str, n_items: int, req: ListRequest
    ) -> Generator[Read, StoredList | None, Plan]:
        """:meth:`plan` as a generator that yields the one key it reads (a :class:`Read`) and
        receives the stored list, so a batch reads its requests' keys in one round trip."""
        cache = self.cache
        if cache is None:
            return Plan(None, req.k, False)
        if not req.cacheable or req.k > cache.list_size:
            self.metrics.cache.labels(req.endpoint, "bypass").inc()
            return Plan(None, req.k, False)
        start = time.perf_counter()
        with self.tracing.stage("cache") as span:
            key = cache.read_key(req.kind, version, req.key_id)
            if key is None:
                found = Lookup("unavailable")
            else:
                found = cache.answer((yield Read(key, n_items)), req.k, req.excluded, req.allowed)
            if span is not None:
                span.set_attribute("recserve.cache.result", found.result)
        self.metrics.stage_latency.labels("cache").observe(time.perf_counter() - start)
        self.metrics.cache.labels(req.endpoint, found.result).inc()
        if found.items is not None and found.scores is not None:
            unknown = np.full(len(found.items), np.nan, np.float32)  # stage-1 scores are not stored
            return Plan(Recommendations(found.items, found.scores, unknown), req.k, False)
        if not req.storable or found.result == "unavailable":
            return Plan(None, req.k, False)
        n = cache.list_size if req.max_n is None else min(cache.list_size, req.max_n)
        return Plan(None, n, True)

    def finish(
        self, version: str, req: ListRequest, plan: Plan, rec: Recommendations
    ) -> tuple[Recommendations, Source]:
        """The other half: write a full computed list back and answer its first ``k``."""
        if not plan.store or self.cache is None:
            return rec, "computed"
        self.cache.store(req.kind, version, req.key_id, rec.items, rec.scores)
        return head(rec, req.k), "computed"

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def build_list_cache(settings: Settings, metrics: Metrics) -> ListCache | None:
    """The cache the settings ask for: Redis if ``redis_url`` is set, else the LRU, else none."""
    if settings.redis_url:
        from listcache.redis_backend import RedisBackend

        backend = RedisBackend.from_url(
            settings.redis_url,
            socket_timeout_s=settings.redis_socket_timeout_s,
            connect_timeout_s=settings.redis_connect_timeout_s,
            observer=metrics,
            ttl_s=settings.redis_ttl_s,
            breaker=CircuitBreaker(settings.redis_breaker_failures, settings.redis_breaker_reset_s),
            ready_check_s=settings.redis_ready_check_s,
        )
        return ListCache(backend, settings.redis_prefix, settings.cache_list_size, settings.redis_write_back)
    if settings.cache_size > 0:
        return ListCache(MemoryBackend(settings.cache_size), settings.redis_prefix, settings.cache_list_size)
    return None
