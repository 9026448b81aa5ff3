"""``recserve serve --workers 2`` with RECSERVE_OTEL_ENDPOINT: every worker process sets up its own
tracer provider and exports over real OTLP/HTTP to a collector on loopback (a stand-in that
decodes what it receives with the OTLP protobuf schema: ``benchmarks.tracing_cost.OTLPSink``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deploy.helpers import free_port, stop

from benchmarks.tracing_cost import OTLPSink
from model_store import LocalStore
from tests.ops.serve_support import wait_until_ready

pytestmark = pytest.mark.slow


@pytest.fixture
def collector() -> Iterator[tuple[OTLPSink, str]]:
    sink = OTLPSink()
    with sink.serving() as endpoint:
        yield sink, endpoint


def test_each_worker_exports_its_own_spans(
    published_store: Path, tmp_path: Path, collector: tuple[OTLPSink, str]
) -> None:
    found, endpoint = collector
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECSERVE_", "OTEL_"))}
    env.update(
        RECSERVE_STORE_POLL_INTERVAL="0",
        RECSERVE_LOG_FORMAT="text",
        RECSERVE_OTEL_ENDPOINT=endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",  # export every 0.1 s instead of 5 s: a short test
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
    )
    cmd = [sys.executable, "-m", "recserve.cli", "serve", "--port", str(port), "--workers", "2"]
    cmd += ["--store", str(published_store)]
    model, _ = LocalStore(published_store).load()
    item = model.item_ids.external(0)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(proc, base, log)
        ids = set()
        # A new connection per request: the kernel hands them to either worker. Bounded.
        for sent in range(400):
            resp = httpx.get(f"{base}/similar-items", params={"item_id": item, "k": 3}, timeout=10)
            assert resp.status_code == 200
            ids.add(resp.headers["X-Request-ID"])
            if sent >= 20 and len(found.pids("GET /similar-items")) == 2:
                break
            time.sleep(0.01)
        deadline = time.monotonic() + 10
        while len(found.pids("GET /similar-items")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop(proc)  # the workers flush what is queued as their lifespan ends
    assert found.paths == {"/v1/traces"}
    workers = found.pids("GET /similar-items")
    assert len(workers) == 2 and proc.pid not in workers, workers  # spans from both, none from the supervisor
    requests = [a for n, a, _ in found.spans if n == "GET /similar-items"]
    assert {a["recserve.request_id"] for a in requests} == ids  # none lost, the last flushed at exit
    assert all(
        a["http.response.status_code"] == 200 and a["http.route"] == "/similar-items" for a in requests
    )
    assert found.pids("retrieval") | found.pids("cache") <= workers
    resource = next(r for n, _, r in found.spans if n == "GET /similar-items")
    assert resource["service.name"] == "recserve"
