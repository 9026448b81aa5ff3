"""A user's interactions since the serving model was trained, where the request path reads them
cheaply: Redis when ``RECSERVE_REDIS_URL`` is set (every replica sees every event), in-process
otherwise (this replica sees the events it accepted).

Per user, a capped list of the latest ``fresh_max_items`` entries, oldest first, each
``(seq, type, item_id)``: ``seq`` is the event's position in the event store, so entries a
model was already trained on (``seq <=`` the watermark in its manifest) are dropped on read, and
a retrained model stops seeing its own training data twice. Entries expire ``fresh_ttl_s`` after
the user's last event.

The request path never fails because of this state: Redis is read with the list cache's short
timeouts, no retries and a circuit breaker; an error is an empty history (counted in
``recserve_redis_errors_total{op="fresh_get"}``), and the request is answered without it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import TTLCache

from listcache import CacheObserver, CircuitBreaker, NullObserver
from service.settings import Settings

log = logging.getLogger("recserve.fresh")


@dataclass(frozen=True)
class FreshItem:
    seq: int
    type: str
    item_id: str


class FreshStore(Protocol):
    def add(self, user_id: str, items: Sequence[FreshItem]) -> None:
        """Append a user's new interactions (oldest first). Never raises."""
        ...

    def get(self, user_id: str) -> list[FreshItem]:
        """The user's latest interactions, oldest first ([] when unknown or unreachable)."""
        ...

    def get_many(self, user_ids: Sequence[str]) -> list[list[FreshItem]]:
        """:meth:`get` for each user (one round trip on Redis)."""
        ...

    def close(self) -> None: ...


class MemoryFresh:
    """In-process: at most ``max_users`` users (least recently written dropped first)."""

    def __init__(
        self,
        max_items: int,
        ttl_s: float,
        max_users: int = 100_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_items = max_items
        self._users: TTLCache[str, deque[FreshItem]] = TTLCache(maxsize=max_users, ttl=ttl_s, timer=timer)
        self._lock = threading.Lock()

    def add(self, user_id: str, items: Sequence[FreshItem]) -> None:
        with self._lock:
            entries = self._users.get(user_id) or deque(maxlen=self.max_items)
            entries.extend(items)
            self._users[user_id] = entries  # re-set: the TTL counts from the last event

    def get(self, user_id: str) -> list[FreshItem]:
        with self._lock:
            return list(self._users.get(user_id, ()))

    def get_many(self, user_ids: Sequence[str]) -> list[list[FreshItem]]:
        with self._lock:
            return [list(self._users.get(u, ())) for u in user_ids]

    def close(self) -> None:
        return None


def _encode(item: FreshItem) -> bytes:
    return f"{item.seq}\t{item.type}\t{item.item_id}".encode()


def _decode(raw: bytes) -> FreshItem | None:
    seq, _, rest = raw.decode(errors="replace").partition("\t")
    type_, _, item_id = rest.partition("\t")
    try:
        return FreshItem(int(seq), type_, item_id)
    except ValueError:
        return None


class RedisFresh:
    """``{prefix}:fresh:{user_id}``: a Redis list, RPUSH + LTRIM + EXPIRE in one pipeline."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        max_items: int,
        ttl_s: int,
        breaker: CircuitBreaker | None = None,
        observer: CacheObserver | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.max_items = max_items
        self.ttl_s = ttl_s
        self.breaker = breaker or CircuitBreaker()
        self.observer = observer or NullObserver()

    @classmethod
    def from_url(
        cls, url: str, socket_timeout_s: float, connect_timeout_s: float, **kwargs: Any
    ) -> RedisFresh:
        from listcache.redis_client import check_url, redis_client

        check_url(url)  # any topology listcache knows (redis://, redis+cluster://, redis+sentinel://)
        return cls(
            _LazyClient(
                lambda: redis_client(
                    url, socket_timeout_s=socket_timeout_s, connect_timeout_s=connect_timeout_s
                )
            ),
            **kwargs,
        )

    def key(self, user_id: str) -> str:
        return f"{self.prefix}:fresh:{user_id}"

    def _call(self, op: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        import redis
        from redis.exceptions import RedisClusterException

        if not self.breaker.allow():
            return False, None
        try:
            result = fn()
        except (redis.RedisError, RedisClusterException, OSError) as exc:
            self.breaker.record_failure()
            self.observer.backend_error(op)
            log.debug("redis %s failed: %s", op, exc)
            return False, None
        self.breaker.record_success()
        return True, result

    def add(self, user_id: str, items: Sequence[FreshItem]) -> None:
        if not items:
            return
        key = self.key(user_id)

        def write() -> Any:
            # one key, so one slot: MULTI on a single node; a cluster pipeline stays non-transactional
            pipe = self.client.pipeline(transaction=not _is_cluster(self.client))
            pipe.rpush(key, *map(_encode, items))
            pipe.ltrim(key, -self.max_items, -1)
            pipe.expire(key, self.ttl_s)
            return pipe.execute()

        self._call("fresh_add", write)

    def get(self, user_id: str) -> list[FreshItem]:
        ok, raw = self._call("fresh_get", lambda: self.client.lrange(self.key(user_id), 0, -1))
        if not ok or not raw:
            return []
        return [item for item in map(_decode, raw) if item is not None]

    def get_many(self, user_ids: Sequence[str]) -> list[list[FreshItem]]:
        def read() -> Any:
            pipe = self.client.pipeline(transaction=False)
            for u in user_ids:
                pipe.lrange(self.key(u), 0, -1)
            return pipe.execute()

        ok, lists = self._call("fresh_get", read)
        if not ok:
            return [[] for _ in user_ids]
        return [[item for item in map(_decode, raw or ()) if item is not None] for raw in lists]

    def close(self) -> None:
        self.client.close()


def build_fresh_store(settings: Settings, observer: CacheObserver | None = None) -> FreshStore:
    """Redis (under the list cache's prefix, timeouts and breaker settings) when configured."""
    if settings.redis_url:
        return RedisFresh.from_url(
            settings.redis_url,
            settings.redis_socket_timeout_s,
            settings.redis_connect_timeout_s,
            prefix=settings.redis_prefix,
            max_items=settings.fresh_max_items,
            ttl_s=settings.fresh_ttl_s,
            breaker=CircuitBreaker(settings.redis_breaker_failures, settings.redis_breaker_reset_s),
            observer=observer,
        )
    return MemoryFresh(settings.fresh_max_items, settings.fresh_ttl_s, settings.fresh_max_users)


def _is_cluster(client: Any) -> bool:
    target = client.connected if isinstance(client, _LazyClient) else client
    return type(target).__name__ == "RedisCluster"


class _LazyClient:
    """A Redis client made on first use, so a Redis (or cluster) that is down when the service
    starts costs failed lookups (counted, breaker) instead of a failed start."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._client: Any = None

    @property
    def connected(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connected, name)
