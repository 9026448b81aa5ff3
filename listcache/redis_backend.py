"""Lists in Redis: written by ``recserve precompute`` (and by the service on a miss), read only
for versions whose ``ready`` marker exists."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from listcache.backend import CacheObserver, ListWrite, NullObserver, StoredList, WriteError
from listcache.breaker import CircuitBreaker
from listcache.codec import DecodeError, decode_list, encode_list
from listcache.config import DEFAULTS

log = logging.getLogger("recserve.listcache")

_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


class RedisBackend:
    """A :class:`~listcache.backend.ListBackend` on one Redis server.

    Serving-path failure policy: every operation is one round trip with a short socket timeout
    and no client retries (redis-py's default would retry 3 times with backoff: an outage would
    cost 4 timeouts per request). Errors are reported to the observer by operation and feed the
    circuit breaker; while it is open no call is made at all. The ready marker is re-checked
    every ``ready_check_s`` so the common path is a single GET.

    Batch-path writes (:meth:`set_many`, :meth:`mark_ready`) bypass the breaker and raise
    :class:`~listcache.backend.WriteError`: a job must know it failed.
    """

    name = "redis"

    def __init__(
        self,
        client: Any,
        *,
        observer: CacheObserver | None = None,
        ttl_s: int = DEFAULTS.ttl_s,
        breaker: CircuitBreaker | None = None,
        ready_check_s: float = DEFAULTS.ready_check_s,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.observer = observer or NullObserver()
        self.ttl_s = ttl_s
        self.breaker = breaker or CircuitBreaker()
        self.ready_check_s = ready_check_s
        self._clock = clock
        self._ready: dict[str, tuple[bool, float]] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout_s: float = DEFAULTS.socket_timeout_s,
        connect_timeout_s: float = DEFAULTS.connect_timeout_s,
        **kwargs: Any,
    ) -> RedisBackend:
        """A backend with its own client: short timeouts, no retries, no health-check pings."""
        client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        return cls(client, **kwargs)

    def _call(self, op: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """Run one Redis call under the breaker: (ok, result); failures are reported, not raised."""
        if not self.breaker.allow():
            return False, None
        try:
            result = fn()
        except _ERRORS as exc:
            self.breaker.record_failure()
            self.observer.backend_error(op)
            log.debug("redis %s failed: %s", op, exc)
            return False, None
        self.breaker.record_success()
        return True, result

    def ready(self, marker_key: str) -> bool:
        now = self._clock()
        known = self._ready.get(marker_key)
        if known is not None and now - known[1] < self.ready_check_s:
            return known[0]
        ok, exists = self._call("ready", lambda: self.client.exists(marker_key))
        if not ok:
            return False  # unknown: do not remember the answer, ask again once Redis is reachable
        self._ready = {marker_key: (bool(exists), now)}  # only the serving version matters
        return bool(exists)

    def get(self, key: str, n_items: int) -> StoredList | None:
        ok, blob = self._call("get", lambda: self.client.get(key))
        if not ok or blob is None:
            return None
        try:
            return decode_list(blob, n_items)
        except DecodeError as exc:
            self.observer.backend_error("decode")
            log.warning("ignoring undecodable cached list %s: %s", key, exc)
            return None

    def set(self, key: str, items: np.ndarray, scores: np.ndarray) -> None:
        blob = encode_list(items, scores)
        self._call("set", lambda: self.client.set(key, blob, ex=self.ttl_s))

    def set_many(self, lists: Iterable[ListWrite], ttl_s: int) -> int:
        """One non-transactional pipeline for the batch: one round trip per batch of keys."""
        pipe = self.client.pipeline(transaction=False)
        size = 0
        for key, items, scores in lists:
            blob = encode_list(items, scores)
            size += len(blob)
            pipe.set(key, blob, ex=ttl_s)
        try:
            pipe.execute()
        except _ERRORS as exc:
            self.observer.backend_error("set_many")
            raise WriteError(f"writing a batch of lists failed: {exc}") from exc
        return size

    def mark_ready(self, marker_key: str, value: bytes, ttl_s: int | None) -> None:
        try:
            self.client.set(marker_key, value, ex=ttl_s)
        except _ERRORS as exc:
            self.observer.backend_error("mark_ready")
            raise WriteError(f"writing the ready marker {marker_key} failed: {exc}") from exc

    def close(self) -> None:
        self.client.close()
