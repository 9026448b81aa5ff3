"""Three real replicas behind the project's HAProxy config on loopback: no request fails when one
replica is killed, and all replicas converge on a newly published model without a failed request.

Three ``recserve serve`` processes share one model store (a folder) and one Redis (the shared
server, under this test's own key prefix). HAProxy (Debian's ``haproxy``) runs
``docker/haproxy/haproxy.cfg`` with only its ports and servers rewritten
(:func:`deploy.helpers.render_haproxy_config`). The figures (requests per replica, convergence
time) are printed; run with ``-s`` to see them (docs/scaling.md quotes them).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from deploy.helpers import free_port, haproxy_servers, haproxy_stats, render_haproxy_config, require_binary
from listcache.precompute import PrecomputeConfig, precompute
from listcache.redis_backend import RedisBackend
from model_store import LocalStore
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel

pytestmark = pytest.mark.slow

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"
REPLICAS = 3
REQUESTS = 3000
KILL_AT = REQUESTS // 3
CLIENTS = 6


@dataclass
class Answer:
    index: int
    started: float
    ended: float
    status: int | None
    replica: str | None = None
    version: str | None = None
    error: str | None = None


@dataclass
class Cluster:
    lb: str
    stats: str
    store: LocalStore
    model: RecommenderModel
    replicas: dict[str, subprocess.Popen] = field(default_factory=dict)  # HAProxy server name -> process
    ports: dict[str, int] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)


def _wait(check: Callable[[], bool], what: str, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in logs if p.exists())
    pytest.fail(f"{what} not within {timeout:.0f} s\n{tails}")


@pytest.fixture
def cluster(
    trained: tuple[RecommenderModel, dict], tmp_path: Path, children: list[subprocess.Popen]
) -> Iterator[Cluster]:
    haproxy = require_binary("haproxy", "haproxy")
    client = redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=5)
    client.ping()  # CI runs a real server (.ci/run): fail loudly rather than skip
    prefix = f"test-recserve-replicas-{uuid.uuid4().hex[:12]}"

    model = clone_model(trained[0], new_version_id())
    store = LocalStore(tmp_path / "store")
    store.publish(model)
    # The precomputed lists of the first model: replicas answer from the one shared Redis.
    precompute(model, RedisBackend(client), PrecomputeConfig(n=100, prefix=prefix, ttl_s=600), progress=False)

    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSERVE_")}
    env |= {"RECSERVE_REDIS_URL": SHARED_REDIS_URL, "RECSERVE_REDIS_PREFIX": prefix}
    lb_port, stats_port = free_port(), free_port()
    c = Cluster(f"http://127.0.0.1:{lb_port}", f"http://127.0.0.1:{stats_port}", store, model)
    for i in range(REPLICAS):
        name, port = f"api{i + 1}", free_port()
        log = tmp_path / f"{name}.log"
        cmd = [sys.executable, "-m", "recserve.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*cmd, "--store", str(store.uri)], cwd=tmp_path, env=env, stdout=out, stderr=out
            )
        children.append(proc)
        c.replicas[name], c.ports[name], c.logs[name] = proc, port, log
    cfg = render_haproxy_config(tmp_path / "haproxy", lb_port, stats_port, list(c.ports.values()))
    log = tmp_path / "haproxy.log"
    with log.open("wb") as out:
        children.append(subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=out, stderr=out))
    logs = [*c.logs.values(), log]
    _wait(lambda: set(haproxy_servers(c.stats).values()) == {"UP"}, "every replica UP in HAProxy", 120, logs)
    try:
        yield c
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()


def _request(http: httpx.Client, i: int, users: list[str], items: list[str]) -> httpx.Response:
    """A mix of the read endpoints, including the POST form of /recommend (replayable too)."""
    user = users[i % len(users)]
    if i % 6 == 0:
        return http.post("/recommend", json={"user_id": user, "k": 10})
    if i % 6 == 1:
        return http.get("/similar-items", params={"item_id": items[i % len(items)], "k": 10})
    return http.get("/recommend", params={"user_id": user, "k": 10})


def _traffic(
    c: Cluster,
    n: int | None,
    until: Callable[[list[Answer]], bool] | None = None,
    before: Callable[[int], None] | None = None,
    timeout: float = 120,
) -> list[Answer]:
    """``n`` requests (or until ``until(answers)``) from CLIENTS threads; ``before(i)`` runs before
    request ``i`` is sent. Every answer is recorded, exceptions included."""
    users = list(c.model.user_ids.externals(list(range(c.model.n_users))))
    items = list(c.model.item_ids.externals(list(range(c.model.n_items))))
    counter, lock, answers = itertools.count(), threading.Lock(), []
    done = threading.Event()
    deadline = time.monotonic() + timeout

    def worker() -> None:
        with httpx.Client(base_url=c.lb, timeout=15) as http:
            while not done.is_set() and time.monotonic() < deadline:
                i = next(counter)
                if n is not None and i >= n:
                    return
                if before is not None:
                    before(i)
                started = time.monotonic()
                try:
                    r = _request(http, i, users, items)
                    body = r.json()
                    version = r.headers.get("X-Model-Version")
                    ok = r.status_code == 200 and body.get("model_version") == version and body["items"]
                    a = Answer(
                        i,
                        started,
                        time.monotonic(),
                        r.status_code,
                        r.headers.get("X-Served-By"),
                        version,
                        None if ok else r.text[:300],
                    )
                except (httpx.HTTPError, ValueError) as exc:
                    a = Answer(i, started, time.monotonic(), None, error=f"{type(exc).__name__}: {exc}")
                with lock:
                    answers.append(a)
                    if until is not None and until(answers):
                        done.set()

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(answers, key=lambda a: a.index)


def _failures(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.error is not None or a.status != 200]


def test_killing_a_replica_loses_no_request_and_all_replicas_converge_on_a_new_model(
    cluster: Cluster,
) -> None:
    c = cluster
    victim = "api1"

    def kill_victim(i: int) -> None:
        if i == KILL_AT:
            c.replicas[victim].kill()  # SIGKILL: no graceful shutdown, requests in flight are cut

    answers = _traffic(c, REQUESTS, before=kill_victim)
    failed = _failures(answers)
    assert len(answers) == REQUESTS
    assert not failed, f"{len(failed)} failed requests, first: {failed[:3]}"
    after_kill = [a for a in answers if a.started > answers[KILL_AT].started]
    served_after = Counter(a.replica for a in after_kill)
    print(
        f"\nper replica: all {dict(Counter(a.replica for a in answers))}, after the kill {dict(served_after)}"
    )
    assert Counter(a.replica for a in answers[:KILL_AT])[victim] > 0  # it did take traffic before
    for name in c.replicas:
        if name != victim:
            assert served_after[name] > 0, f"{name} served nothing after the kill: {dict(served_after)}"
    assert c.replicas[victim].poll() is not None
    _wait(lambda: haproxy_servers(c.stats)[victim] != "UP", "the killed replica marked down", 10, [])
    assert [a.version for a in answers] == [c.model.version] * REQUESTS
    # The zero above is HAProxy's doing: requests that hit the dead replica were replayed elsewhere.
    backend = next(r for r in haproxy_stats(c.stats) if r["pxname"] == "api" and r["svname"] == "BACKEND")
    print(f"HAProxy retries {backend['wretr']}, redispatches {backend['wredis']}")
    assert int(backend["wretr"]) + int(backend["wredis"]) > 0

    # -- publish a new bundle under load: every surviving replica converges, nothing fails --
    survivors = {name for name in c.replicas if name != victim}
    new = clone_model(c.model, new_version_id())
    first_new: dict[str, float] = {}

    def converged(seen: list[Answer]) -> bool:
        last = seen[-1]
        if last.version == new.version and last.replica not in first_new:
            first_new[last.replica] = last.ended
        # keep going a little past convergence, so answers after the switch are checked too
        return first_new.keys() >= survivors and time.monotonic() > max(first_new.values()) + 1.0

    published_at = time.monotonic()
    c.store.publish(new)
    switch = _traffic(c, None, until=converged, timeout=60)
    failed = _failures(switch)
    assert not failed, f"{len(failed)} failed requests during the switch, first: {failed[:3]}"
    assert first_new.keys() >= survivors, f"not converged in 60 s: {first_new}"
    # Once a replica answered with the new model it never answers with the old one again.
    for a in switch:
        if a.replica in first_new and a.started > first_new[a.replica]:
            assert a.version == new.version, (a, first_new)
    for name in survivors:
        ready = httpx.get(f"http://127.0.0.1:{c.ports[name]}/readyz", timeout=5).json()
        assert ready["model_version"] == new.version, name
    spread = {k: round(v - published_at, 2) for k, v in sorted(first_new.items())}
    print(
        f"publish -> every replica answering with the new model: {max(spread.values()):.2f} s "
        f"(per replica {spread}; poll interval 5 s, default); {len(switch)} requests during the switch"
    )


def test_haproxy_limits_requests_per_api_key(tmp_path: Path, children: list[subprocess.Popen]) -> None:
    """The per-key stick table answers 429 in the service's error shape above the limit; other keys
    and keyless requests are not affected. No replica is needed: HAProxy decides before the backend
    (requests under the limit get HAProxy's own 503, since the one server is a closed port)."""
    haproxy = require_binary("haproxy", "haproxy")
    lb_port, stats_port = free_port(), free_port()
    cfg = render_haproxy_config(tmp_path, lb_port, stats_port, [free_port()], rate_limit=5)
    log = tmp_path / "haproxy.log"
    with log.open("wb") as out:
        children.append(subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=out, stderr=out))
    lb = f"http://127.0.0.1:{lb_port}"
    _wait(
        lambda: httpx.get(f"http://127.0.0.1:{stats_port}/healthz", timeout=1).status_code == 200,
        "haproxy",
        20,
        [log],
    )
    with httpx.Client(base_url=lb, timeout=10) as http:
        statuses = [http.get("/recommend", headers={"X-API-Key": "key-a"}).status_code for _ in range(12)]
        assert statuses[:5] == [503] * 5 and set(statuses[6:]) == {429}, statuses
        limited = http.get("/recommend", headers={"X-API-Key": "key-a"})
        assert limited.json()["error"]["code"] == "rate_limited"
        assert limited.headers["Retry-After"] == "1"
        assert http.get("/recommend", headers={"X-API-Key": "key-b"}).status_code == 503
        unavailable = http.get("/recommend")
        assert unavailable.status_code == 503
        assert unavailable.json()["error"]["code"] == "no_replica_ready"
