"""The two cache backends and the ListCache facade, against a real Redis."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from service.cache import (
    CircuitBreaker,
    ListCache,
    MemoryBackend,
    RedisBackend,
    build_cache,
    encode_list,
    list_key,
    ready_key,
)
from service.metrics import Metrics
from service.settings import Settings

from .conftest import SHARED_REDIS_URL, RedisProcess, free_port


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Ids:
    """Stands in for an IdMap: index i ↔ "i{i}"."""

    def externals(self, indices: list[int]) -> list[str]:
        return [f"i{i}" for i in indices]


def errors(metrics: Metrics, op: str) -> float:
    return metrics.registry.get_sample_value("recserve_redis_errors_total", {"op": op}) or 0.0


def cache_count(metrics: Metrics, endpoint: str, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "recserve_cache_requests_total", {"endpoint": endpoint, "result": result}
    )
    return value or 0.0


def backend(metrics: Metrics, prefix: str, url: str = SHARED_REDIS_URL, **kw) -> RedisBackend:
    kw.setdefault("socket_timeout_s", 2.0)  # generous: the shared machine is busy; outage tests set it short
    kw.setdefault("connect_timeout_s", 2.0)
    return RedisBackend(url, prefix, metrics, ttl_s=600, **kw)


ITEMS = np.array([5, 3, 9, 1])
SCORES = np.array([0.9, 0.8, 0.7, 0.6], np.float32)


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


def test_redis_backend_round_trip_with_ttl(shared_redis: redis.Redis, redis_prefix: str) -> None:
    metrics = Metrics()
    b = backend(metrics, redis_prefix)
    key = list_key(redis_prefix, "v1", "rec", "u1")
    assert b.get(key, 10) is None
    b.set(key, ITEMS, SCORES)
    items, scores = b.get(key, 10)
    np.testing.assert_array_equal(items, ITEMS)
    np.testing.assert_array_equal(scores, SCORES)
    assert 0 < shared_redis.ttl(key) <= 600
    assert errors(metrics, "get") == errors(metrics, "set") == 0
    b.close()


def test_ready_marker_is_rechecked_only_every_interval(shared_redis: redis.Redis, redis_prefix: str) -> None:
    clock = FakeClock()
    b = backend(Metrics(), redis_prefix, ready_check_s=5.0, clock=clock)
    assert not b.ready("v1")
    shared_redis.set(ready_key(redis_prefix, "v1"), b"{}")
    assert not b.ready("v1")  # remembered for 5 s: one EXISTS per interval, not per request
    clock.now += 5.0
    assert b.ready("v1")
    assert not b.ready("v2")  # other versions are never ready by association
    b.close()


def test_undecodable_values_are_a_counted_miss(shared_redis: redis.Redis, redis_prefix: str) -> None:
    metrics = Metrics()
    b = backend(metrics, redis_prefix)
    key = list_key(redis_prefix, "v1", "rec", "u1")
    shared_redis.set(key, b'["not", "our", "format"]')
    assert b.get(key, 10) is None
    shared_redis.set(key, encode_list(np.array([10]), np.array([1.0], np.float32)))
    assert b.get(key, 10) is None  # index 10 does not exist in a 10-item catalogue
    assert errors(metrics, "decode") == 2
    b.close()


def test_unreachable_redis_is_counted_then_the_breaker_stops_trying() -> None:
    metrics = Metrics()
    clock = FakeClock()
    b = backend(
        metrics,
        "p",
        url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        breaker=CircuitBreaker(failure_threshold=3, reset_after_s=5.0, clock=clock),
    )
    for _ in range(10):
        assert b.get("p:v1:rec:u1", 10) is None
        b.set("p:v1:rec:u1", ITEMS, SCORES)
        assert not b.ready("v1")
    assert errors(metrics, "get") + errors(metrics, "set") + errors(metrics, "ready") == 3
    assert b.breaker.state == "open"
    clock.now += 5.0
    assert b.get("p:v1:rec:u1", 10) is None  # the half-open trial fails: counted, open again
    assert errors(metrics, "get") + errors(metrics, "set") + errors(metrics, "ready") == 4
    assert b.breaker.state == "open"
    b.close()


def test_the_backend_recovers_by_itself_after_a_restart(redis_server: RedisProcess) -> None:
    metrics = Metrics()
    clock = FakeClock()
    b = backend(
        metrics,
        "p",
        url=redis_server.url,
        breaker=CircuitBreaker(failure_threshold=2, reset_after_s=5.0, clock=clock),
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
    assert errors(metrics, "get") >= 1
    b.close()


# -- the facade -----------------------------------------------------------------------------------
def test_list_cache_hit_miss_bypass_and_post_filtering() -> None:
    metrics = Metrics()
    cache = ListCache(MemoryBackend(100), metrics, list_size=4)
    look = lambda k, **kw: cache.lookup("recommend", "rec", "v1", "u1", Ids(), 10, k, **kw)  # noqa: E731
    assert look(2).result == "miss"
    cache.store("rec", "v1", "u1", ITEMS, SCORES, k=2)
    hit = look(2)
    assert hit.result == "hit"
    assert hit.items == [("i5", pytest.approx(0.9)), ("i3", pytest.approx(0.8))]
    assert look(2, excluded_ids={"i5"}).items == [("i3", pytest.approx(0.8)), ("i9", pytest.approx(0.7))]
    assert look(2, excluded_ids={"i5", "i3", "i9"}).result == "miss"  # one left, two wanted: compute
    assert look(5).result == "bypass"  # k > N never reads
    assert look(2, cacheable=False).result == "bypass"
    assert cache_count(metrics, "recommend", "hit") == 2
    assert cache_count(metrics, "recommend", "miss") == 2
    assert cache_count(metrics, "recommend", "bypass") == 2


def test_list_cache_only_stores_full_lists() -> None:
    cache = ListCache(MemoryBackend(100), Metrics(), list_size=4)
    assert cache.compute_k(2) == 4 and cache.compute_k(9) == 9 and cache.compute_k(2, cacheable=False) == 2
    cache.store("rec", "v1", "u1", ITEMS, SCORES, k=9)  # a k > N answer is not the top-N list
    assert cache.lookup("recommend", "rec", "v1", "u1", Ids(), 10, 1).result == "miss"


def test_redis_is_neither_read_nor_written_before_the_ready_marker(
    shared_redis: redis.Redis, redis_prefix: str
) -> None:
    cache = ListCache(backend(Metrics(), redis_prefix, ready_check_s=0), Metrics(), list_size=4)
    key = list_key(redis_prefix, "v1", "rec", "u1")
    shared_redis.set(key, encode_list(ITEMS, SCORES))
    assert cache.lookup("recommend", "rec", "v1", "u1", Ids(), 10, 2).result == "unavailable"
    cache.store("rec", "v1", "u2", ITEMS, SCORES, k=2)
    assert not shared_redis.exists(list_key(redis_prefix, "v1", "rec", "u2"))
    shared_redis.set(ready_key(redis_prefix, "v1"), b"{}")
    assert cache.lookup("recommend", "rec", "v1", "u1", Ids(), 10, 2).result == "hit"
    cache.store("rec", "v1", "u2", ITEMS, SCORES, k=2)  # write-back once the version is ready
    assert shared_redis.exists(list_key(redis_prefix, "v1", "rec", "u2"))
    cache.close()


def test_build_cache_follows_the_settings() -> None:
    metrics = Metrics()
    memory = build_cache(Settings(_env_file=None), metrics)
    assert isinstance(memory.backend, MemoryBackend)
    assert build_cache(Settings(cache_size=0, _env_file=None), metrics) is None
    remote = build_cache(Settings(redis_url=SHARED_REDIS_URL, redis_prefix="x", _env_file=None), metrics)
    assert isinstance(remote.backend, RedisBackend) and remote.prefix == "x"
    remote.close()


def test_a_malformed_redis_url_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match=r"redis_url[\s\S]*must start with redis://"):
        Settings(redis_url="localhost:6379", _env_file=None)
    assert Settings(redis_url="", _env_file=None).redis_url is None  # empty = no Redis
