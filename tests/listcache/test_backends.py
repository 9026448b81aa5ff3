"""The two backends and the ListCache facade, against a real Redis; one contract for both backends."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis
from redis_support import SHARED_REDIS_URL, RedisProcess, free_port

from listcache import (
    CircuitBreaker,
    ListBackend,
    ListCache,
    MemoryBackend,
    WriteError,
    encode_list,
    list_key,
    ready_key,
)
from listcache.redis_backend import RedisBackend


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Errors:
    """A CacheObserver that counts failures by operation."""

    def __init__(self) -> None:
        self.ops: dict[str, int] = {}

    def backend_error(self, op: str) -> None:
        self.ops[op] = self.ops.get(op, 0) + 1

    def total(self) -> int:
        return sum(self.ops.values())


def backend(url: str = SHARED_REDIS_URL, **kw) -> RedisBackend:
    kw.setdefault("socket_timeout_s", 2.0)  # generous: the shared machine is busy; outage tests set it short
    kw.setdefault("connect_timeout_s", 2.0)
    return RedisBackend.from_url(url, ttl_s=600, **kw)


ITEMS = np.array([5, 3, 9, 1])
SCORES = np.array([0.9, 0.8, 0.7, 0.6], np.float32)


# -- the contract every backend keeps -------------------------------------------------------------
@pytest.fixture(params=["memory", "redis"])
def any_backend(request: pytest.FixtureRequest, redis_prefix: str) -> Iterator[tuple[ListBackend, str]]:
    b: ListBackend = MemoryBackend(100) if request.param == "memory" else backend()
    yield b, redis_prefix
    b.close()


def test_backend_round_trip_single_and_batch(any_backend: tuple[ListBackend, str]) -> None:
    b, prefix = any_backend
    one, many = (
        list_key(prefix, "v1", "rec", "u1"),
        [list_key(prefix, "v1", "sim", f"i{i}") for i in range(3)],
    )
    assert b.get(one, 10) is None
    b.set(one, ITEMS, SCORES)
    written = b.set_many(((key, ITEMS[: i + 1], SCORES[: i + 1]) for i, key in enumerate(many)), ttl_s=600)
    assert written == sum(8 + 8 * (i + 1) for i in range(3))  # the packed size, whatever the backend
    items, scores = b.get(one, 10)
    np.testing.assert_array_equal(items, ITEMS)
    np.testing.assert_array_equal(scores, SCORES)
    for i, key in enumerate(many):
        np.testing.assert_array_equal(b.get(key, 10)[0], ITEMS[: i + 1])
    b.mark_ready(ready_key(prefix, "v1"), b"{}", ttl_s=600)
    assert b.ready(ready_key(prefix, "v1"))


def test_get_many_reads_what_get_reads(any_backend: tuple[ListBackend, str]) -> None:
    """``ListCache.get_many`` (one pipeline on Redis, one get each otherwise): same lists, order kept."""
    b, prefix = any_backend
    keys = [list_key(prefix, "v1", "rec", f"u{i}") for i in range(4)]
    b.set(keys[0], ITEMS, SCORES)
    b.set(keys[2], ITEMS[:2], SCORES[:2])
    cache = ListCache(b, prefix)
    for asked in (keys, keys[2:3]):
        got = cache.get_many(asked, 10)
        assert len(got) == len(asked)
        for key, entry in zip(asked, got, strict=True):
            alone = b.get(key, 10)
            assert (entry is None) == (alone is None)
            if entry is not None:
                np.testing.assert_array_equal(entry[0], alone[0])
                np.testing.assert_array_equal(entry[1], alone[1])


# -- memory ---------------------------------------------------------------------------------------
def test_memory_backend_is_an_lru() -> None:
    b = MemoryBackend(maxsize=2)
    assert b.ready("any-version")
    b.set("a", ITEMS, SCORES)
    b.set("b", ITEMS[:2], SCORES[:2])
    assert b.get("a", 10) is not None  # touch a: b is now the least recently used
    b.set("c", ITEMS, SCORES)
    assert b.get("b", 10) is None
    items, scores = b.get("a", 10)
    np.testing.assert_array_equal(items, ITEMS)
    np.testing.assert_array_equal(scores, SCORES)
    assert len(b) == 2


# -- redis ----------------------------------------------------------------------------------------
def test_redis_backend_round_trip_with_ttl(shared_redis: redis.Redis, redis_prefix: str) -> None:
    errors = Errors()
    b = backend(observer=errors)
    key = list_key(redis_prefix, "v1", "rec", "u1")
    b.set(key, ITEMS, SCORES)
    assert b.get(key, 10) is not None
    assert 0 < shared_redis.ttl(key) <= 600
    b.set_many([(list_key(redis_prefix, "v1", "rec", "u2"), ITEMS, SCORES)], ttl_s=300)
    assert 0 < shared_redis.ttl(list_key(redis_prefix, "v1", "rec", "u2")) <= 300
    assert errors.total() == 0
    b.close()


def test_ready_marker_is_rechecked_only_every_interval(shared_redis: redis.Redis, redis_prefix: str) -> None:
    clock = FakeClock()
    b = backend(ready_check_s=5.0, clock=clock)
    marker = ready_key(redis_prefix, "v1")
    assert not b.ready(marker)
    shared_redis.set(marker, b"{}")
    assert not b.ready(marker)  # remembered for 5 s: one EXISTS per interval, not per request
    clock.now += 5.0
    assert b.ready(marker)
    assert not b.ready(ready_key(redis_prefix, "v2"))  # other versions are never ready by association
    b.close()


def test_undecodable_values_are_a_counted_miss(shared_redis: redis.Redis, redis_prefix: str) -> None:
    errors = Errors()
    b = backend(observer=errors)
    key = list_key(redis_prefix, "v1", "rec", "u1")
    shared_redis.set(key, b'["not", "our", "format"]')
    assert b.get(key, 10) is None
    shared_redis.set(key, encode_list(np.array([10]), np.array([1.0], np.float32)))
    assert b.get(key, 10) is None  # index 10 does not exist in a 10-item catalogue
    assert errors.ops == {"decode": 2}
    b.close()


def test_unreachable_redis_is_counted_then_the_breaker_stops_trying() -> None:
    errors = Errors()
    clock = FakeClock()
    b = backend(
        url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        observer=errors,
        breaker=CircuitBreaker(failure_threshold=3, reset_after_s=5.0, clock=clock),
    )
    for _ in range(10):
        assert b.get("p:v1:rec:u1", 10) is None
        b.set("p:v1:rec:u1", ITEMS, SCORES)
        assert not b.ready("p:v1:ready")
    assert errors.total() == 3
    assert b.breaker.state == "open"
    clock.now += 5.0
    assert b.get("p:v1:rec:u1", 10) is None  # the half-open trial fails: counted, open again
    assert errors.total() == 4
    assert b.breaker.state == "open"
    b.close()


def test_batch_writes_raise_instead_of_being_swallowed() -> None:
    errors = Errors()
    b = backend(url=f"redis://127.0.0.1:{free_port()}/0", observer=errors)
    with pytest.raises(WriteError, match="writing a batch of lists failed"):
        b.set_many([("p:v1:rec:u1", ITEMS, SCORES)], ttl_s=60)
    with pytest.raises(WriteError, match="ready marker"):
        b.mark_ready("p:v1:ready", b"{}", ttl_s=60)
    assert errors.ops == {"set_many": 1, "mark_ready": 1}
    b.close()


def test_the_backend_recovers_by_itself_after_a_restart(redis_server: RedisProcess) -> None:
    clock = FakeClock()
    b = backend(
        url=redis_server.url, breaker=CircuitBreaker(failure_threshold=2, reset_after_s=5.0, clock=clock)
    )
    b.set("p:v1:rec:u1", ITEMS, SCORES)
    assert b.get("p:v1:rec:u1", 10) is not None
    redis_server.kill()
    assert b.get("p:v1:rec:u1", 10) is None
    assert b.get("p:v1:rec:u1", 10) is None
    assert b.breaker.state == "open"
    redis_server.start()
    assert b.get("p:v1:rec:u1", 10) is None  # still open: no call made
    clock.now += 5.0
    b.set("p:v1:rec:u1", ITEMS, SCORES)  # half-open trial on a fresh connection succeeds
    assert b.breaker.state == "closed"
    items, _ = b.get("p:v1:rec:u1", 10)
    np.testing.assert_array_equal(items, ITEMS)
    b.close()


# -- the facade -----------------------------------------------------------------------------------
def test_list_cache_lookup_post_filters_on_indices() -> None:
    cache = ListCache(MemoryBackend(100), prefix="p", list_size=4)
    look = lambda k, **kw: cache.lookup("rec", "v1", "u1", 10, k, **kw)  # noqa: E731
    assert look(2).result == "miss"
    assert cache.store("rec", "v1", "u1", ITEMS, SCORES)
    hit = look(2)
    assert hit.hit and hit.items.tolist() == [5, 3] and hit.scores.tolist() == pytest.approx([0.9, 0.8])
    assert look(2, excluded=np.array([5])).items.tolist() == [3, 9]
    allowed = np.ones(10, bool)
    allowed[3] = False
    assert look(3, allowed=allowed).items.tolist() == [5, 9, 1]
    assert look(2, excluded=np.array([5, 3, 9])).result == "miss"  # one left, two wanted: compute
    assert cache.lookup("rec", "v2", "u1", 10, 2).result == "miss"  # the version is in the key


def test_redis_is_neither_read_nor_written_before_the_ready_marker(
    shared_redis: redis.Redis, redis_prefix: str
) -> None:
    cache = ListCache(backend(ready_check_s=0), prefix=redis_prefix, list_size=4)
    shared_redis.set(list_key(redis_prefix, "v1", "rec", "u1"), encode_list(ITEMS, SCORES))
    assert cache.lookup("rec", "v1", "u1", 10, 2).result == "unavailable"
    assert not cache.store("rec", "v1", "u2", ITEMS, SCORES)
    assert not shared_redis.exists(list_key(redis_prefix, "v1", "rec", "u2"))
    shared_redis.set(ready_key(redis_prefix, "v1"), b"{}")
    assert cache.lookup("rec", "v1", "u1", 10, 2).result == "hit"
    assert cache.store("rec", "v1", "u2", ITEMS, SCORES)  # write-back once the version is ready
    assert shared_redis.exists(list_key(redis_prefix, "v1", "rec", "u2"))
    cache.close()


def test_write_back_can_be_switched_off(shared_redis: redis.Redis, redis_prefix: str) -> None:
    cache = ListCache(backend(ready_check_s=0), prefix=redis_prefix, list_size=4, write_back=False)
    shared_redis.set(ready_key(redis_prefix, "v1"), b"{}")
    assert not cache.store("rec", "v1", "u1", ITEMS, SCORES)
    assert not shared_redis.exists(list_key(redis_prefix, "v1", "rec", "u1"))
    cache.close()
