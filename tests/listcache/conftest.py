"""Fixtures for the cache tests: the shared Redis at 127.0.0.1:6379 under a private key prefix,
and throw-away ``redis-server`` processes on free ports for outage tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_support import SHARED_REDIS_URL, RedisProcess


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=5)
    client.ping()  # CI runs against a real server: fail loudly rather than skip
    yield client
    client.close()


@pytest.fixture
def redis_prefix(shared_redis: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"test-recserve-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(shared_redis.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 1000):
        shared_redis.delete(*keys[i : i + 1000])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private redis-server on a free port, killed afterwards."""
    server = RedisProcess.on_free_port(tmp_path)
    yield server
    server.kill()
