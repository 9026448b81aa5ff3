"""Redis frozen, killed and restarted empty under load against a real uvicorn process: zero 5xx.

The service runs as a separate process (``uvicorn service.app:create_app --factory``), exactly as
deployed; Redis is a private ``redis-server`` this test starts, kills, restarts and SIGSTOPs.
"""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from model_store import LocalStore
from service.settings import Settings
from training.precompute import PrecomputeConfig, precompute

from .conftest import RedisServer

pytestmark = pytest.mark.slow

PREFIX = "outage"


class Service:
    """A uvicorn child process on a free port (``--port 0``; the port is read from its log)."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "service.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-access-log",
                "--log-level",
                "info",
            ],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = self._wait_for_port()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)

    def _wait_for_port(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            if found:
                return found.group(1)
        raise RuntimeError("service did not start:\n" + "".join(self.log))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def service(published_store: Path, redis_server: RedisServer, tmp_path: Path) -> Iterator[Service]:
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
    svc = Service(env, tmp_path)  # cwd without a .env file: only this environment counts
    yield svc
    svc.stop()


def _precompute(published_store: Path, url: str) -> None:
    model, _ = LocalStore(published_store).load()
    model.n_candidates = Settings(_env_file=None).n_candidates
    client = redis.Redis.from_url(url, socket_timeout=10)
    precompute(model, client, PrecomputeConfig(prefix=PREFIX), progress=False)
    client.close()


def test_redis_outage_under_load_costs_no_request(
    published_store: Path, redis_server: RedisServer, service: Service
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
