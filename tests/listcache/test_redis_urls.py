"""Redis URLs: which topology each scheme selects, what a malformed one says, and that a cache whose
cluster is unreachable costs requests nothing (the client is made lazily, under the breaker)."""

from __future__ import annotations

import numpy as np
import pytest
import redis
from redis_support import free_port

from listcache import CircuitBreaker, WriteError
from listcache.redis_backend import RedisBackend
from listcache.redis_client import RedisURLError, check_url, redis_client
from service.settings import Settings


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", "single"),
        ("rediss://cache.example:6380/1", "single"),
        ("unix:///run/redis.sock", "single"),
        ("redis+cluster://10.0.0.1:7000,10.0.0.2:7000", "cluster"),
        ("rediss+cluster://user:pw@10.0.0.1:7000", "cluster"),
        ("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/lists", "sentinel"),
        ("redis+sentinel://10.0.0.1:26379/lists/2", "sentinel"),
    ],
)
def test_each_scheme_names_its_topology(url: str, kind: str) -> None:
    assert check_url(url) == kind
    assert Settings(redis_url=url, _env_file=None).redis_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:6379", "must start with redis://"),
        ("memcached://127.0.0.1:11211", "must start with redis://"),
        ("redis+cluster://10.0.0.1", "expected host:port"),
        ("redis+cluster://10.0.0.1:7000,:7001", "expected host:port"),
        ("redis+cluster://10.0.0.1:99999", "expected host:port"),
        ("redis+sentinel://10.0.0.1:26379", "expected /service"),
        ("redis+sentinel://10.0.0.1:26379/lists/x", "expected /service"),
    ],
)
def test_a_malformed_url_is_refused_at_startup_naming_it(url: str, message: str) -> None:
    with pytest.raises(RedisURLError, match=message):
        check_url(url)
    with pytest.raises(ValueError, match=rf"redis_url[\s\S]*{message}"):
        Settings(redis_url=url, _env_file=None)
    with pytest.raises(RedisURLError):
        RedisBackend.from_url(url)


def test_a_cluster_client_connects_when_made_a_single_server_client_does_not() -> None:
    """Why the backend makes its client lazily: a cluster client discovers slots in its constructor."""
    ports = [free_port(), free_port()]
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    with pytest.raises(redis.exceptions.RedisClusterException, match="127.0.0.1"):
        redis_client(url, socket_timeout_s=0.1, connect_timeout_s=0.1)
    single = redis_client(f"redis://127.0.0.1:{ports[0]}/0", socket_timeout_s=0.1, connect_timeout_s=0.1)
    with pytest.raises(redis.ConnectionError):
        single.ping()
    single.close()


def test_an_unreachable_cluster_is_a_miss_and_opens_the_breaker() -> None:
    clock = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=5.0, clock=lambda: clock[0])
    backend = RedisBackend.from_url(
        f"redis+cluster://127.0.0.1:{free_port()}",
        socket_timeout_s=0.05,
        connect_timeout_s=0.05,
        breaker=breaker,
    )
    assert backend.ready("p:v:ready") is False
    assert backend.get("p:v:rec:u1", 10) is None
    assert breaker.state == "open"
    backend.set("p:v:rec:u1", np.array([1]), np.array([0.5]))  # never raises, not even attempted
    with pytest.raises(WriteError):
        backend.set_many([("p:v:rec:u1", np.array([1]), np.array([0.5]))], ttl_s=60)
    backend.close()
