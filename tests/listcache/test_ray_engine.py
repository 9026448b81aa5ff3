"""``recserve precompute --engine ray`` on a real two-node Ray cluster on loopback.

The Ray engine writes exactly the local engine's bytes under every key, and a worker node whose
raylet is SIGKILLed mid-job never leaves a ``ready`` marker over missing keys: either Ray
recovers and the output is complete and identical, or the job fails without a marker and a rerun
completes it. The driver runs as the real command line, in its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from benchmarks.precompute_rate import random_model
from benchmarks.procs import RedisProcess
from benchmarks.ray_cluster import RayCluster
from listcache import ready_key
from model_store import LocalStore
from model_store.store import clone_model
from recserve.cli import main

pytest.importorskip("ray", reason="the extra recserve[distributed] is not installed")
pytestmark = [pytest.mark.slow, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ray_cluster() -> Iterator[RayCluster]:
    with RayCluster(nodes=2, object_store_mb=200) as cluster:
        yield cluster


def ray_precompute(
    cluster: RayCluster | None, store: Path, url: str, prefix: str, *extra: str
) -> subprocess.Popen[str]:
    """``recserve precompute --engine ray`` as its own process (``cluster`` None: ``local``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    address = "local"
    if cluster is not None:
        env |= cluster.driver_env
        address = cluster.address
    argv = [sys.executable, "-m", "recserve.cli", "precompute", "--engine", "ray", "--ray-address", address]
    argv += ["--store", str(store), "--redis-url", url, "--prefix", prefix, "--no-progress", "--json", *extra]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(job: subprocess.Popen[str], timeout: float = 300) -> tuple[str, str]:
    """(stdout, stderr) of a finished job; a job still running after ``timeout`` is killed."""
    try:
        return job.communicate(timeout=timeout)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def lists(client: redis.Redis, prefix: str) -> dict[bytes, bytes]:
    """Every list under ``prefix`` (not the marker), keyed without the prefix."""
    keys = [k for k in client.scan_iter(f"{prefix}:*", count=1000) if not k.endswith(b":ready")]
    values = client.mget(keys) if keys else []
    return {k[len(prefix) :]: v for k, v in zip(keys, values, strict=True)}


def test_ray_engine_writes_the_local_engines_bytes(
    ray_cluster: RayCluster, published_store: Path, redis_server: RedisProcess
) -> None:
    job = ray_precompute(ray_cluster, published_store, redis_server.url, "ray", "--batch-size", "64")
    out, err = finish(job)
    assert job.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    local = ["precompute", "--store", str(published_store), "--redis-url", redis_server.url]
    assert main([*local, "--prefix", "local", "--batch-size", "64", "--no-progress"]) == 0

    client = redis.Redis.from_url(redis_server.url)
    version = LocalStore(published_store).current_version()
    on_ray, on_local = lists(client, "ray"), lists(client, "local")
    assert report["engine"] == "ray" and report["keys"] == 500 == len(on_local)
    assert on_ray == on_local  # every key, byte for byte
    marker = json.loads(client.get(ready_key("ray", version)))
    assert (marker["users"], marker["items"]) == (300, 200)
    # the marker has no TTL (volatile-* eviction never takes it); the lists do
    assert client.ttl(ready_key("ray", version)) == -1 and client.ttl(f"ray:{version}:rec:u0") > 0
    client.close()


def test_a_worker_node_lost_mid_job_never_leaves_a_marker_over_missing_keys(
    ray_cluster: RayCluster, redis_server: RedisProcess, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    LocalStore(store).publish(clone_model(random_model(20_000, 2_000, 16), "fault"))
    expected = 22_000
    client = redis.Redis.from_url(redis_server.url)
    marker = ready_key("ray", "fault")
    violations: list[int] = []
    stop = threading.Event()

    def watch() -> None:  # the invariant, checked all along: a marker only over every key
        while not stop.is_set():
            if client.exists(marker) and (n := client.dbsize() - 1) < expected:
                violations.append(n)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        job = ray_precompute(ray_cluster, store, redis_server.url, "ray", "--batch-size", "128")
        while client.dbsize() < expected // 10 and job.poll() is None:
            time.sleep(0.05)
        assert job.poll() is None and not client.exists(marker), "the job ended before the fault"
        written_at_kill = client.dbsize()
        ray_cluster.nodes[1].kill_raylet()
        out, err = finish(job)
        outcome = "recovered" if job.returncode == 0 else "failed"
        print(f"raylet killed after {written_at_kill} of {expected} keys; first run {outcome}")
        if job.returncode != 0:
            assert not client.exists(marker)
            assert "no ready marker written" in err.strip().splitlines()[-1], err[-3000:]
            rerun = ray_precompute(ray_cluster, store, redis_server.url, "ray", "--batch-size", "128")
            out, err = finish(rerun)  # the head alone finishes it
            assert rerun.returncode == 0, err[-3000:]
    finally:
        stop.set()
        watcher.join()
    assert not violations, f"a ready marker existed over only {violations[0]} of {expected} keys"
    assert client.exists(marker) and json.loads(out.strip().splitlines()[-1])["keys"] == expected

    local = ["precompute", "--store", str(store), "--redis-url", redis_server.url, "--prefix", "local"]
    assert main([*local, "--batch-size", "128", "--no-progress"]) == 0
    assert lists(client, "ray") == lists(client, "local")
    client.close()


def test_an_unreachable_ray_cluster_is_one_line_naming_it(
    published_store: Path, redis_server: RedisProcess
) -> None:
    from benchmarks.procs import free_port

    address = f"127.0.0.2:{free_port()}"
    job = ray_precompute(None, published_store, redis_server.url, "nope", "--ray-address", address)
    _, err = finish(job, timeout=120)
    assert job.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("recserve precompute: error: ") and address in last, err[-2000:]
    assert "Traceback" not in err
