"""Fixtures for the cache tests: the shared Redis at 127.0.0.1:6379 under a private key prefix,
and throw-away ``redis-server`` processes on free ports for outage tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A ``redis-server`` child process without persistence (a restart loses every key)."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server must be installed for the cache tests"
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


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
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free port (retried if another process grabs the port)."""
    for _ in range(5):
        server = RedisServer(free_port(), tmp_path)
        try:
            server.start()
            break
        except RuntimeError:
            server.kill()
    else:
        raise RuntimeError("could not start a redis-server on a free port")
    yield server
    server.kill()
