"""The real compose stack on podman: built image, 3 api replicas behind HAProxy, Redis, Prometheus.

Run by ``make test-deploy`` (docker/test/stack.sh builds the images and starts podman's Docker
API, then sets ``RECSERVE_STACK_DOCKER_HOST``); skipped by a plain ``pytest``. Everything binds
127.0.0.1 on free ports; the stack and its volumes are removed afterwards.

podman without systemd does not schedule healthchecks by itself (it would use a systemd timer), so
:class:`HealthTicker` runs ``podman healthcheck run`` on every container of the stack every two
seconds, which is what that timer does. compose's ``condition: service_healthy`` needs it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml

from deploy.helpers import ROOT, free_port

DOCKER_HOST = os.environ.get("RECSERVE_STACK_DOCKER_HOST")
IMAGE = os.environ.get("RECSERVE_STACK_IMAGE", "localhost/recserve:latest")
PROJECT = "recserve-test-deploy"
REPLICAS = 3
# compose requires RECSERVE_API_KEYS; every list request sends one. HAProxy limits each key to 1,000
# requests per 10 s (docker/haproxy/haproxy.cfg): the load of the stop test uses one key per client,
# each paced under that limit.
API_KEYS = [secrets.token_hex(24) for _ in range(5)]
KEYED = {"X-API-Key": API_KEYS[0]}
LOAD_RPS_PER_KEY = 50
COMPOSE_FILES = ["-f", "docker-compose.yml", "-f", "docker/test/compose.podman.yml"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not DOCKER_HOST, reason="needs podman and built images: run `make test-deploy` (docker/test/stack.sh)"
    ),
]


def _run(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return _run(["podman", *args], timeout=timeout)


class HealthTicker:
    """``podman healthcheck run`` on every running container of the project, every ``period`` s."""

    def __init__(self, period: float = 2.0) -> None:
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            ids = podman("ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout.split()
            for cid in ids:
                podman("healthcheck", "run", cid)  # exit 125 = no healthcheck defined: fine

    def __enter__(self) -> HealthTicker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class Stack:
    env: dict[str, str]
    lb: str
    lb_stats: str
    prometheus: str

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return _run(["docker-compose", "-p", PROJECT, *COMPOSE_FILES, *args], env=self.env, timeout=timeout)

    def containers(self, service: str) -> list[str]:
        result = self.compose("ps", "-q", service)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    def inspect(self, cid: str) -> dict:
        result = podman("inspect", cid)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)[0]

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40").stdout


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    api, stats, prom = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "RECSERVE_API_KEYS": ",".join(API_KEYS),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "DOCKER_HOST": DOCKER_HOST or "",
        "COMPOSE_HTTP_TIMEOUT": "600",
        "GRAFANA_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "API_PORT": f"127.0.0.1:{api}",
        "MONITORING_BIND": "127.0.0.1",
        "LB_STATS_PORT": str(stats),
        "PROMETHEUS_PORT": str(prom),
        "GRAFANA_PORT": str(free_port()),
    }
    s = Stack(env, f"http://127.0.0.1:{api}", f"http://127.0.0.1:{stats}", f"http://127.0.0.1:{prom}")
    s.compose("down", "-v", "--remove-orphans", timeout=300)
    with HealthTicker():
        try:
            # Blocks until the trainer has finished and Redis is healthy (depends_on conditions).
            up = s.compose("up", "-d", "--no-build", "--scale", f"api={REPLICAS}", timeout=900)
            assert up.returncode == 0, f"docker-compose up failed:\n{up.stderr[-4000:]}\n{s.logs()}"
            yield s
        except BaseException:
            print(s.logs())
            raise
        finally:
            down = s.compose("down", "-v", "--remove-orphans", timeout=300)
            assert down.returncode == 0, down.stderr


def _wait(check, what: str, timeout: float, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last is True:
                return
        except (httpx.HTTPError, KeyError, ValueError, AssertionError) as exc:
            last = exc
        time.sleep(1)
    pytest.fail(f"{what} not within {timeout:.0f} s (last: {last!r})\n{stack.logs()}")


def _one_shot_exit_code(stack: Stack, service: str) -> int | None:
    (cid,) = stack.containers(service)
    state = stack.inspect(cid)["State"]
    return None if state["Status"] == "running" or state.get("Running") else state["ExitCode"]


def test_the_image_is_the_cpu_build_and_the_service_runs_as_non_root(stack: Stack) -> None:
    torch = podman(
        "run", "--rm", "--network", "none", IMAGE, "python", "-c", "import torch; print(torch.__version__)"
    )
    assert torch.returncode == 0 and torch.stdout.strip() == "2.13.0+cpu", torch.stdout + torch.stderr
    config = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Config"]
    assert config["User"] == "recserve:recserve"
    for cid in stack.containers("api"):
        top = podman("top", cid, "user", "args").stdout.splitlines()[1:]
        assert top and all(line.split()[0] == "recserve" for line in top), top


def test_every_api_replica_is_healthy_by_the_dockerfile_healthcheck(stack: Stack) -> None:
    api = stack.containers("api")
    assert len(api) == REPLICAS
    image = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    test = (image.get("Healthcheck") or image["Config"]["Healthcheck"])["Test"]  # podman: top level
    assert test[0] == "CMD" and "/readyz" in " ".join(test)

    def all_healthy() -> bool:
        return all(stack.inspect(cid)["State"]["Health"]["Status"] == "healthy" for cid in api)

    _wait(all_healthy, "every api replica healthy", 300, stack)
    for cid in api:  # the image's own HEALTHCHECK command, run in each replica: exit 0
        result = podman("exec", cid, *test[1:])
        assert result.returncode == 0, result.stderr


def test_hardening_is_in_effect_in_every_running_container(stack: Stack) -> None:
    for service in ("redis", "api", "lb", "prometheus", "postgres", "retrain"):
        for cid in stack.containers(service):
            info = stack.inspect(cid)
            host = info["HostConfig"]
            assert host["ReadonlyRootfs"] is True, service
            assert not info.get("BoundingCaps") and not info.get("EffectiveCaps"), service  # cap_drop ALL
            assert any("no-new-privileges" in o for o in host.get("SecurityOpt") or []), service
            assert host["Memory"] > 0 and host["PidsLimit"] > 0, service
            assert info["Config"]["User"] not in ("", "0", "root"), service


def test_healthchecks_reach_the_containers_intact(stack: Stack) -> None:
    """The engine runs exactly the configured check (podman 4.3's Docker API re-splits arguments at
    spaces: an inline ``bash -c '…'`` became ``bash -c exec``, which always passes)."""
    resolved = yaml.safe_load(stack.compose("config").stdout)["services"]
    image = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    for service in ("redis", "api", "lb", "prometheus"):
        want = resolved[service].get("healthcheck", {}).get("test") or image["Healthcheck"]["Test"]
        for cid in stack.containers(service):
            assert stack.inspect(cid)["Config"]["Healthcheck"]["Test"] == want, service


def test_traffic_through_haproxy_reaches_every_replica_and_is_answered_from_the_cache(stack: Stack) -> None:
    _wait(
        lambda: _one_shot_exit_code(stack, "precompute") == 0, "precompute finished with exit 0", 600, stack
    )
    served: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    with httpx.Client(base_url=stack.lb, timeout=10, headers=KEYED) as http:
        _wait(lambda: http.get("/readyz").status_code == 200, "HAProxy forwarding", 60, stack)
        _wait(lambda: _all_up(stack), f"{REPLICAS} replicas UP in HAProxy", 120, stack)
        for i in range(300):
            resp = http.get("/recommend", params={"user_id": f"u{i}", "k": 10})
            assert resp.status_code == 200, resp.text
            served[resp.headers["X-Served-By"]] += 1
            sources[resp.json()["source"]] += 1
    print(f"\nrequests per replica {dict(served)}, by source {dict(sources)}")
    assert len(served) == REPLICAS
    assert sources["cache"] >= 250, sources  # every default request of a known user is precomputed


def test_feedback_through_one_replica_is_seen_by_every_replica(stack: Stack) -> None:
    """Nothing sticky: the fresh-feedback state lives in the stack's Redis (docs/feedback.md), so
    an item clicked through one replica leaves the user's answers on every replica at once."""
    user = "u7"
    served: Counter[str] = Counter()
    with httpx.Client(base_url=stack.lb, timeout=10, headers=KEYED) as http:
        top = http.get("/recommend", params={"user_id": user, "k": 10}).json()["items"][0]["item_id"]
        event = {"user_id": user, "item_id": top, "type": "click"}
        accepted = http.post("/feedback", json=event)
        assert accepted.status_code in (200, 201, 202), accepted.text
        for _ in range(6 * REPLICAS):  # round robin: every replica answers several times
            resp = http.get("/recommend", params={"user_id": user, "k": 10})
            assert resp.status_code == 200, resp.text
            served[resp.headers["X-Served-By"]] += 1
            assert top not in [i["item_id"] for i in resp.json()["items"]], resp.headers["X-Served-By"]
    assert len(served) == REPLICAS, served


# The server slots of `server-template api 10`: the BACKEND row of the stats is "UP" too and must
# not be counted as a replica.
_SLOTS = {f"api{i}" for i in range(1, 11)}


def _all_up(stack: Stack) -> bool:
    """True once REPLICAS servers are UP; else an AssertionError naming every resolved server's
    state, its last check and HAProxy's own log lines about servers (the failure message)."""
    text = httpx.get(f"{stack.lb_stats}/stats;csv", timeout=5).text.lstrip("# ")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["pxname"] == "api" and r["svname"] in _SLOTS]
    up = [r for r in rows if r["status"] == "UP"]
    if len(up) == REPLICAS:
        return True
    states = [
        (r["svname"], r["status"], r["check_status"], r["check_desc"])
        for r in rows
        if r["status"] != "MAINT (resolution)"
    ]
    logs = stack.compose("logs", "--no-color", "lb").stdout.splitlines()
    lb = [x for x in logs if "api/" in x or "Server" in x]
    raise AssertionError(f"{states}; lb: {lb[-20:]}")


def _up_servers(stack: Stack) -> list[str]:
    text = httpx.get(f"{stack.lb_stats}/stats;csv", timeout=5).text.lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return [
        r["svname"] for r in rows if r["pxname"] == "api" and r["svname"] in _SLOTS and r["status"] == "UP"
    ]


def test_prometheus_scrapes_every_replica(stack: Stack) -> None:
    def every_replica_up() -> bool:
        resp = httpx.get(
            f"{stack.prometheus}/api/v1/query", params={"query": 'up{job="recserve"}'}, timeout=5
        )
        result = resp.json()["data"]["result"]
        assert len(result) == REPLICAS and all(r["value"][1] == "1" for r in result), result
        return True

    _wait(every_replica_up, "Prometheus: every replica up", 120, stack)
    haproxy = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": 'up{job="haproxy"}'}, timeout=5)
    assert [r["value"][1] for r in haproxy.json()["data"]["result"]] == ["1"]
    # The figure docs/deploy.md sizes the api's mem_limit from: RSS of each replica after traffic.
    rss = httpx.get(
        f"{stack.prometheus}/api/v1/query",
        params={"query": 'process_resident_memory_bytes{job="recserve"}'},
        timeout=5,
    ).json()["data"]["result"]
    print(f"\napi RSS per replica (MB): {sorted(round(float(r['value'][1]) / 1e6) for r in rss)}")
    # ... and the served bundle's size on disk: the second model a hot swap briefly holds.
    api = stack.containers("api")[0]
    bundle = podman("exec", api, "sh", "-c", 'du -sk "/store/versions/$(cat /store/CURRENT)"')
    print(f"served bundle on disk: {bundle.stdout.strip() or bundle.stderr.strip()} (kB)")
    # the peak memory of each replica's cgroup so far, as its limit sees it (cgroup v1 or v2)
    for cid in stack.containers("api"):
        v2, v1 = "/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"
        peak = podman("exec", cid, "sh", "-c", f"cat {v2} 2>/dev/null || cat {v1}")
        print(f"api {cid[:12]} cgroup peak memory (bytes): {peak.stdout.strip() or peak.stderr.strip()}")


def test_stopping_an_api_container_under_load_fails_no_request(stack: Stack) -> None:
    victim = stack.containers("api")[-1]
    stop_load = threading.Event()
    results: list[tuple[float, int | None, str]] = []
    lock = threading.Lock()

    def client(offset: int) -> None:
        with httpx.Client(base_url=stack.lb, timeout=15, headers={"X-API-Key": API_KEYS[1 + offset]}) as http:
            i = offset
            while not stop_load.wait(1 / LOAD_RPS_PER_KEY):
                try:
                    r = http.get("/recommend", params={"user_id": f"u{i % 1000}", "k": 10})
                    outcome = (time.monotonic(), r.status_code, r.headers.get("X-Served-By", ""))
                except httpx.HTTPError as exc:
                    outcome = (time.monotonic(), None, repr(exc))
                with lock:
                    results.append(outcome)
                i += 7

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    stop = podman("stop", "-t", "10", victim, timeout=60)  # SIGTERM: uvicorn's graceful shutdown
    stopped_at = time.monotonic()
    time.sleep(5)
    stop_load.set()
    for t in threads:
        t.join()
    assert stop.returncode == 0, stop.stderr
    failed = [r for r in results if r[1] != 200]
    after = Counter(r[2] for r in results if r[0] > stopped_at)
    print(f"\n{len(results)} requests while one of {REPLICAS} replicas was stopped; after: {dict(after)}")
    assert not failed, f"{len(failed)} failed, first {failed[:3]}"
    assert len(after) == REPLICAS - 1, after  # the stopped replica gets nothing, the others share
    _wait(lambda: len(_up_servers(stack)) == REPLICAS - 1, "HAProxy drops the stopped replica", 30, stack)
