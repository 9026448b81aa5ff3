"""Redis frozen, killed and restarted empty under load against a real uvicorn process: zero 5xx.

The service runs as a separate process (``uvicorn service.app:create_app --factory``), exactly as
deployed; Redis is a private ``redis-server`` this test starts, kills, restarts and SIGSTOPs.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from benchmarks.procs import RedisProcess, ServiceProcess
from listcache.precompute import PrecomputeConfig, precompute
from listcache.redis_backend import RedisBackend
from model_store import LocalStore
from service.settings import Settings

pytestmark = pytest.mark.slow

PREFIX = "outage"


@pytest.fixture
def service(published_store: Path, redis_server: RedisProcess, tmp_path: Path) -> Iterator[ServiceProcess]:
    env = {
        **os.environ,
        "RECSERVE_STORE_URI": str(published_store),
        "RECSERVE_REDIS_URL": redis_server.url,
        "RECSERVE_REDIS_PREFIX": PREFIX,
        "RECSERVE_REDIS_SOCKET_TIMEOUT_S": "0.05",
        "RECSERVE_REDIS_CONNECT_TIMEOUT_S": "0.1",
        "RECSERVE_REDIS_BREAKER_RESET_S": "1.0",
        "RECSERVE_REDIS_READY_CHECK_S": "0.5",
    }
    svc = ServiceProcess(env, tmp_path)  # cwd without a .env file: only this environment counts
    yield svc
    svc.stop()


def _precompute(published_store: Path, url: str) -> None:
    model, _ = LocalStore(published_store).load()
    if Settings(_env_file=None).n_candidates is not None:  # as the service configures it
        model.n_candidates = Settings(_env_file=None).n_candidates
    client = redis.Redis.from_url(url, socket_timeout=10)
    precompute(model, RedisBackend(client), PrecomputeConfig(prefix=PREFIX), progress=False)
    client.close()


def test_redis_outage_under_load_costs_no_request(
    published_store: Path, redis_server: RedisProcess, service: ServiceProcess
) -> None:
    _precompute(published_store, redis_server.url)
    rng = random.Random(0)
    pid = lambda: redis_server.proc.pid  # noqa: E731  (changes on restart)
    # request index → (phase name, action, seconds to let the breaker reset and the marker be seen)
    schedule = {
        200: ("frozen (SIGSTOP)", lambda: os.kill(pid(), signal.SIGSTOP), 0),
        400: ("thawed", lambda: os.kill(pid(), signal.SIGCONT), 1.2),
        550: ("killed", redis_server.kill, 0),
        750: ("restarted empty", redis_server.start, 0),
        900: ("precomputed again", lambda: _precompute(published_store, redis_server.url), 1.2),
    }
    phase = "normal"
    statuses: Counter[int] = Counter()
    sources: dict[str, Counter[str]] = {}
    latencies: dict[str, list[float]] = {}
    with httpx.Client(base_url=service.url, timeout=30) as http:
        for n in range(1200):
            if n in schedule:
                phase, action, pause = schedule[n]
                action()
                time.sleep(pause)  # breaker reset (1 s) and ready re-check (0.5 s) pass
            if rng.random() < 0.7:
                path, params = "/recommend", {"user_id": f"u{rng.randrange(300)}", "k": 10}
            else:
                path, params = "/similar-items", {"item_id": f"i{rng.randrange(200)}", "k": 10}
            start = time.perf_counter()
            resp = http.get(path, params=params)
            latencies.setdefault(phase, []).append(time.perf_counter() - start)
            statuses[resp.status_code] += 1
            if resp.status_code == 200:
                sources.setdefault(phase, Counter())[resp.json()["source"]] += 1
        metrics = http.get("/metrics").text

    for phase, values in latencies.items():
        values.sort()
        print(
            f"{phase:>36}: {len(values):4d} requests, p50 {values[len(values) // 2] * 1e3:6.2f} ms, "
            f"max {values[-1] * 1e3:6.1f} ms, sources {dict(sources.get(phase, {}))}"
        )
    assert statuses == Counter({200: 1200}), statuses
    assert sources["normal"]["cache"] > 0.9 * 200
    assert set(sources["frozen (SIGSTOP)"]) == {"computed"}  # timeouts, then the open breaker
    assert sources["thawed"]["cache"] > 0.9 * 150  # recovered by itself: the breaker closed again
    assert set(sources["killed"]) == {"computed"}
    assert set(sources["restarted empty"]) == {"computed"}  # no ready marker in the new server
    assert sources["precomputed again"]["cache"] > 0.9 * 300
    errors = {
        op: float(v)
        for op, v in re.findall(r'recserve_redis_errors_total\{op="(\w+)"\} ([0-9.e+]+)', metrics)
    }
    print("redis errors:", errors)
    assert errors.get("get", 0) + errors.get("ready", 0) >= 2, errors
    assert sum(errors.values()) < 100, errors  # the breaker kept an outage from costing every request
