"""A real Prometheus scrapes a real ``recserve serve`` process and answers the p99 of /recommend.

Both run on loopback with free ports; Prometheus keeps its TSDB in the test's temp dir. The scrape
config is written as JSON, which is valid YAML, so no YAML library is needed.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.helpers import DOCKERFILE, concrete, dashboard_queries, free_port, require_binary, stop
from training.data import InteractionData

pytestmark = pytest.mark.slow
needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="`prometheus` not found on PATH (Debian package `prometheus`; .ci/run installs it)",
)

P99_RECOMMEND = (
    "histogram_quantile(0.99, sum by (le) "
    '(rate(recserve_request_latency_seconds_bucket{endpoint="/recommend",status="200"}[15s])))'
)


def _wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} not ready within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _query(prom: str, expr: str) -> dict:
    resp = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5)
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return body["data"]


@pytest.fixture(scope="module")
def api(published_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``recserve serve`` (one uvicorn process, as in the container) on a free loopback port."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("api")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSERVE_")}
    log = workdir / "api.log"
    cmd = [sys.executable, "-m", "recserve.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--store", str(published_store)], cwd=workdir, env=env, stdout=out, stderr=out
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/readyz", proc, log, timeout=120)
        yield base
    finally:
        stop(proc)


@pytest.fixture
def prometheus(api: str, tmp_path: Path, children: list[subprocess.Popen]) -> str:
    """A Prometheus scraping the api every second."""
    exe = require_binary("prometheus", "prometheus")  # the module's skipif already checked; path here
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "recserve", "static_configs": [{"targets": [api.removeprefix("http://")]}]}
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(json.dumps(config))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=out,
        )
    children.append(proc)
    base = f"http://127.0.0.1:{port}"
    _wait_for(f"{base}/-/ready", proc, log, timeout=60)
    return base


@needs_prometheus
def test_prometheus_answers_p99_latency_of_recommend(
    api: str, prometheus: str, small_data: InteractionData
) -> None:
    users = small_data.user_ids
    value = math.nan
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=api, timeout=5) as http:
        i = 0
        while time.monotonic() < deadline:
            # Traffic keeps flowing between scrapes, so rate() over the window is never all zero.
            for _ in range(20):
                resp = http.get("/recommend", params={"user_id": users[i % len(users)], "k": 10})
                assert resp.status_code == 200
                i += 1
            result = _query(prometheus, P99_RECOMMEND)["result"]
            if result:
                value = float(result[0]["value"][1])
                if math.isfinite(value):
                    break
            time.sleep(0.5)
    print(f"\nPrometheus p99 latency of /recommend: {value * 1000:.2f} ms ({i} requests sent)")
    assert math.isfinite(value), f"no finite p99 from Prometheus within 60 s (last: {value})"
    assert 0 < value <= 1.0  # inside the histogram's finite buckets

    up = _query(prometheus, 'up{job="recserve"}')["result"]
    assert [float(r["value"][1]) for r in up] == [1.0]

    # Every dashboard query is valid PromQL for this Prometheus, and the latency panels have data.
    for title, expr in dashboard_queries():
        data = _query(prometheus, concrete(expr))
        if "request_latency" in expr:
            assert data["result"], f"{title}: {expr} returned nothing"


def test_dockerfile_healthcheck_passes_against_a_serving_api(api: str) -> None:
    """The image's HEALTHCHECK command, run as Docker would, against a real ``recserve serve``."""
    healthcheck = re.search(r"^HEALTHCHECK [^\n]*\\\n\s+CMD (\[[^\n]*\])$", DOCKERFILE.read_text(), re.M)
    assert healthcheck, "no exec-form HEALTHCHECK CMD in the Dockerfile"
    cmd = json.loads(healthcheck.group(1))
    assert cmd[0] == "python"
    port = api.rsplit(":", 1)[1]
    ok = subprocess.run([sys.executable, *cmd[1:]], env={**os.environ, "RECSERVE_PORT": port}, timeout=30)
    assert ok.returncode == 0
    closed = subprocess.run(
        [sys.executable, *cmd[1:]],
        env={**os.environ, "RECSERVE_PORT": str(free_port())},
        timeout=30,
        capture_output=True,
    )
    assert closed.returncode != 0
