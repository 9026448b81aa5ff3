"""The list cache on a real Redis Cluster (3 primaries + 3 replicas on loopback ports).

Precompute spreads a version's keys evenly over the primaries, stores the same bytes a single
server stores, and the service answers the same from either. Killing a primary under HTTP load
against a real ``recserve serve`` costs no request: the breaker computes while the replica takes
over, and afterwards the lists on the dead primary's slots are served from the promoted replica.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from benchmarks.precompute_rate import random_model
from benchmarks.procs import RedisProcess, ServiceProcess
from benchmarks.redis_clusters import RedisCluster
from listcache import ready_key
from listcache.redis_client import redis_client
from model_store import LocalStore
from model_store.store import clone_model
from recserve.cli import main
from service.app import create_app
from service.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

PREFIX = "rc"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path, primaries=3, replicas=1, node_timeout_ms=2000) as c:
        yield c


@pytest.fixture(scope="module")
def wide_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """7,000 lists under a fixed version: enough keys that ±10% per primary is a real claim."""
    root = tmp_path_factory.mktemp("wide-store")
    LocalStore(root).publish(clone_model(random_model(6000, 1000, 16), "wide"))
    return root


def precompute_cli(store: Path, url: str) -> None:
    argv = ["precompute", "--store", str(store), "--redis-url", url, "--prefix", PREFIX, "--no-progress"]
    assert main(argv) == 0


def cluster_client(c: RedisCluster) -> redis.RedisCluster:
    return redis_client(c.url, socket_timeout_s=5, connect_timeout_s=5, retries=3)


def test_a_version_spreads_over_every_primary_and_reads_like_one_server(
    cluster: RedisCluster, redis_server: RedisProcess, wide_store: Path
) -> None:
    precompute_cli(wide_store, cluster.url)
    precompute_cli(wide_store, redis_server.url)

    per_primary = {p: redis.Redis("127.0.0.1", p).dbsize() for p in cluster.primaries()}
    mean = sum(per_primary.values()) / len(per_primary)
    print("keys per primary:", per_primary)
    assert len(per_primary) == 3 and sum(per_primary.values()) == 7000 + 1  # lists + the marker
    assert all(0.9 * mean <= n <= 1.1 * mean for n in per_primary.values()), per_primary

    single = redis.Redis.from_url(redis_server.url)
    keys = sorted(k for k in single.scan_iter(f"{PREFIX}:*", count=1000) if not k.endswith(b":ready"))
    assert len(keys) == 7000
    client = cluster_client(cluster)
    try:
        assert client.mget_nonatomic(keys) == single.mget(keys)  # every key, byte for byte
    finally:
        client.close()
        single.close()

    rng = np.random.default_rng(0)
    users = [f"u{u}" for u in rng.choice(6000, 150, replace=False)]
    items = [f"i{i}" for i in rng.choice(1000, 60, replace=False)]
    settings = {"store_uri": str(wide_store), "redis_prefix": PREFIX, "_env_file": None}
    settings |= {"redis_socket_timeout_s": 2.0, "redis_connect_timeout_s": 2.0, "redis_write_back": False}
    with (
        TestClient(create_app(Settings(redis_url=cluster.url, **settings))) as on_cluster,
        TestClient(create_app(Settings(redis_url=redis_server.url, **settings))) as on_single,
    ):
        requests = [("/recommend", {"user_id": u, "k": 10}) for u in users]
        requests += [("/similar-items", {"item_id": i, "k": 10}) for i in items]
        for path, params in requests:
            a = on_cluster.get(path, params=params).json()
            b = on_single.get(path, params=params).json()
            assert a.pop("recomm_id") != b.pop("recomm_id")  # unique per answer; the rest is equal
            assert a == b and a["source"] == "cache", (path, params)


def _load(url: str, stop: threading.Event, phase: list[str], seen: dict[str, Counter[str]]) -> None:
    """Request users and items round-robin until ``stop``; count outcomes under the current phase."""
    rng = np.random.default_rng(threading.get_ident() % 2**32)
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            if rng.random() < 0.7:
                path, params = "/recommend", {"user_id": f"u{rng.integers(300)}", "k": 10}
            else:
                path, params = "/similar-items", {"item_id": f"i{rng.integers(200)}", "k": 10}
            name = phase[0]
            try:
                resp = http.get(path, params=params)
                outcome = resp.json()["source"] if resp.status_code == 200 else f"http {resp.status_code}"
            except httpx.HTTPError as exc:
                outcome = f"failed: {type(exc).__name__}"
            seen.setdefault(name, Counter())[outcome] += 1


def test_killing_a_primary_under_load_fails_no_request(
    cluster: RedisCluster, published_store: Path, tmp_path: Path
) -> None:
    precompute_cli(published_store, cluster.url)
    version = LocalStore(published_store).current_version()
    marker = ready_key(PREFIX, version)
    # the victim: a primary that does not hold the ready marker (that one is exercised by the
    # outage tests); its lists must survive on the replica that replaces it
    client = cluster_client(cluster)
    marker_port = client.get_node_from_key(marker).port
    client.close()
    victim = next(p for p in cluster.primaries() if p != marker_port)
    on_victim = redis.Redis("127.0.0.1", victim)
    victim_lists = {k: on_victim.get(k) for k in on_victim.scan_iter(f"{PREFIX}:*", count=1000)}
    on_victim.close()
    assert len(victim_lists) > 100

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "RECSERVE_REDIS_URL": cluster.url,
        "RECSERVE_REDIS_PREFIX": PREFIX,
        "RECSERVE_REDIS_BREAKER_RESET_S": "0.5",
        "RECSERVE_REDIS_READY_CHECK_S": "0.5",
        "RECSERVE_REDIS_WRITE_BACK": "false",  # every hit after the failover is a replicated list
        "RECSERVE_STORE_POLL_INTERVAL": "0",
    }
    serve = [sys.executable, "-m", "recserve.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
    service = ServiceProcess(env, tmp_path, command=[*serve, "--store", str(published_store)])
    phase, seen, stop = ["normal"], {}, threading.Event()
    threads = [threading.Thread(target=_load, args=(service.url, stop, phase, seen)) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        time.sleep(2)
        phase[0] = "primary killed"
        killed_at = time.monotonic()
        cluster.kill(victim)
        cluster.wait_failover(victim, primaries=3)  # a replica was promoted: every slot has a primary
        failover_s = time.monotonic() - killed_at
        time.sleep(1.5)  # the breaker (0.5 s) and the ready re-check (0.5 s) pass
        phase[0] = "after failover"
        time.sleep(3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        with httpx.Client(base_url=service.url, timeout=30) as http:
            victim_users = [k.decode().rsplit(":", 1)[1] for k in victim_lists if b":rec:" in k]
            sources = [
                http.get("/recommend", params={"user_id": u, "k": 10}).json()["source"] for u in victim_users
            ]
        service.stop()
    print(f"failover took {failover_s:.1f} s; outcomes per phase: {seen}")
    failed = {name: {o for o in c if o not in ("cache", "computed")} for name, c in seen.items()}
    assert all(not f for f in failed.values()), failed
    assert seen["normal"]["cache"] > 0.95 * sum(seen["normal"].values())
    assert seen["primary killed"]["computed"] > 0  # the breaker answered while the slots had no primary
    after = seen["after failover"]
    assert after["cache"] > 0.95 * sum(after.values()), after
    # the dead primary's lists are all on the promoted replica, byte for byte, and served from there
    assert sources and set(sources) == {"cache"}
    client = cluster_client(cluster)
    try:
        keys = list(victim_lists)
        assert client.mget_nonatomic(keys) == [victim_lists[k] for k in keys]
    finally:
        client.close()
