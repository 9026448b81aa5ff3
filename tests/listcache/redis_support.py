"""Shared by the list-cache tests: the shared Redis's URL and private redis-server processes."""

from __future__ import annotations

from benchmarks.procs import RedisProcess, free_port

__all__ = ["SHARED_REDIS_URL", "RedisProcess", "free_port"]

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"
