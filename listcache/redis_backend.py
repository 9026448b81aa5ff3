"""Lists in Redis (one server, a Redis Cluster or a Sentinel-managed primary): written by
``recserve precompute`` (and by the service on a miss), read only for versions whose ``ready``
marker exists."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import redis
from redis.exceptions import RedisClusterException

from listcache.backend import CacheObserver, ListWrite, NullObserver, StoredList, WriteError
from listcache.breaker import CircuitBreaker
from listcache.codec import DecodeError, decode_list, encode_list
from listcache.config import DEFAULTS
from listcache.redis_client import check_url, redis_client

log = logging.getLogger("recserve.listcache")

#: batch-path client settings (:meth:`RedisBackend.for_job`)
JOB_SOCKET_TIMEOUT_S = 30.0
JOB_CONNECT_TIMEOUT_S = 5.0
JOB_RETRIES = 3

# RedisClusterException (no slot map, no reachable node) is not a RedisError in redis-py.
_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, RedisClusterException, OSError)


class RedisBackend:
    """A :class:`~listcache.backend.ListBackend` on Redis: one server, a cluster or a sentinel group.

    Serving-path failure policy: every operation is one round trip with a short socket timeout
    and no client retries (redis-py's default would retry 3 times with backoff: an outage would
    cost 4 timeouts per request). Errors are reported to the observer by operation and feed the
    circuit breaker; while it is open no call is made at all. The ready marker is re-checked
    every ``ready_check_s`` so the common path is a single GET.

    Batch-path writes (:meth:`set_many`, :meth:`mark_ready`) bypass the breaker and raise
    :class:`~listcache.backend.WriteError`: a job must know it failed.

    The same code serves every topology: keys are single-key commands, and a batch is a
    non-transactional pipeline, which redis-py's ``RedisCluster`` splits into one pipeline per
    node (keys of one version are spread over all slots: the version is never a hash tag). Give
    either a ready ``client`` or ``connect``, which makes one on first use: a cluster client
    connects when made, and the service must start (and compute) while Redis is down.
    """

    name = "redis"

    def __init__(
        self,
        client: Any = None,
        *,
        connect: Callable[[], Any] | None = None,
        observer: CacheObserver | None = None,
        ttl_s: int = DEFAULTS.ttl_s,
        breaker: CircuitBreaker | None = None,
        ready_check_s: float = DEFAULTS.ready_check_s,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (client is None) == (connect is None):
            raise ValueError("pass either a client or a connect function")
        self._client = client
        self._connect = connect
        self._connect_lock = threading.Lock()
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
        """A backend with its own client (made on first use): short timeouts, no retries, no
        health-check pings. ``url`` may name any topology of :mod:`listcache.redis_client`."""
        check_url(url)  # a malformed URL fails here, at startup, not on the first request

        def connect() -> Any:
            return redis_client(url, socket_timeout_s=socket_timeout_s, connect_timeout_s=connect_timeout_s)

        return cls(connect=connect, **kwargs)

    @classmethod
    def for_job(cls, url: str) -> RedisBackend:
        """The batch path's backend (``recserve precompute``, either engine): 30 s timeouts and 3
        client retries, so a job waits out a slow server or a cluster failover (SETs are
        idempotent) instead of failing; its writes never go through the breaker anyway."""
        return cls(
            redis_client(
                url,
                socket_timeout_s=JOB_SOCKET_TIMEOUT_S,
                connect_timeout_s=JOB_CONNECT_TIMEOUT_S,
                retries=JOB_RETRIES,
            )
        )

    @property
    def client(self) -> Any:
        """The redis-py client, made on first use; raises what making it raises (handled by callers)."""
        if self._client is None:
            assert self._connect is not None
            with self._connect_lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

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
        return self._decode(key, blob, n_items) if ok else None

    def get_many(self, keys: list[str], n_items: int) -> list[StoredList | None]:
        """:meth:`get` for many keys in one non-transactional pipeline (one round trip per node)."""
        if len(keys) == 1:
            return [self.get(keys[0], n_items)]

        def read() -> Any:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
            return pipe.execute()

        ok, blobs = self._call("get", read)
        if not ok:
            return [None] * len(keys)
        return [self._decode(key, blob, n_items) for key, blob in zip(keys, blobs, strict=True)]

    def _decode(self, key: str, blob: bytes | None, n_items: int) -> StoredList | None:
        if blob is None:
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
        """One non-transactional pipeline for the batch: one round trip per batch of keys (per node
        of a cluster)."""
        blobs = [(key, encode_list(items, scores)) for key, items, scores in lists]
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, blob in blobs:
                pipe.set(key, blob, ex=ttl_s)
            pipe.execute()
        except _ERRORS as exc:
            self.observer.backend_error("set_many")
            raise WriteError(f"writing a batch of lists failed: {exc}") from exc
        return sum(len(blob) for _, blob in blobs)

    def mark_ready(self, marker_key: str, value: bytes, ttl_s: int | None) -> None:
        try:
            self.client.set(marker_key, value, ex=ttl_s)
        except _ERRORS as exc:
            self.observer.backend_error("mark_ready")
            raise WriteError(f"writing the ready marker {marker_key} failed: {exc}") from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
