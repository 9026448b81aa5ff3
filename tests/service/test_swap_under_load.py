"""Zero failed requests across model swaps, against a real uvicorn process.

Concurrent clients keep querying while 5 good bundles and 3 damaged ones are published
(alternately picked up by the poller and pushed with ``POST /admin/reload``). Every answer must be
a 2xx whose ``model_version`` (body and header agree) is a good version that was valid when the
request ran: published before the answer came back, and not yet superseded by a version the
service had confirmed serving before the request started.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from bundle_faults import damage

from model_store import LocalStore
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel
from service.http_protocol import PROTOCOL

TOKEN = "load-test-token"
MIN_REQUESTS = 2000
CLIENTS = 4


class Server:
    """``uvicorn service.app:create_app`` on a free port, its log collected in a thread."""

    def __init__(self, store: Path, cwd: Path) -> None:
        env = {
            **os.environ,
            "RECSERVE_STORE_URI": str(store),
            "RECSERVE_STORE_POLL_INTERVAL": "0.1",
            "RECSERVE_ADMIN_TOKEN": TOKEN,
            "RECSERVE_TORCH_THREADS": "1",
        }
        cmd = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--http", PROTOCOL]
        cmd += ["--host", "127.0.0.1", "--port", "0", "--no-access-log", "--log-level", "info"]
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.port: int | None = None
        self._started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            m = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self._started.set()
        self._started.set()

    def wait_started(self, timeout: float = 120) -> str:
        self._started.wait(timeout)
        if self.port is None:
            raise AssertionError("uvicorn did not start:\n" + "\n".join(self.lines[-30:]))
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Answer:
    started: float
    ended: float
    status: int
    version: str | None
    header: str | None


@pytest.fixture
def server_and_store(
    tmp_path: Path, trained: tuple[RecommenderModel, dict]
) -> Iterator[tuple[Server, LocalStore]]:
    store = LocalStore(tmp_path / "store")
    store.publish(clone_model(trained[0], new_version_id()))
    server = Server(store.root, tmp_path)
    try:
        yield server, store
    finally:
        server.stop()


@pytest.mark.slow
def test_swaps_under_load_fail_no_request(
    server_and_store: tuple[Server, LocalStore], trained: tuple[RecommenderModel, dict]
) -> None:
    server, store = server_and_store
    model = trained[0]
    base = server.wait_started()
    first = store.current_version()
    answers: list[Answer] = []
    failures: list[str] = []
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        users, items = model.user_ids.ids, model.item_ids.ids
        with httpx.Client(base_url=base, timeout=30) as c:
            while not stop.is_set():
                if rng.random() < 0.7:
                    path, params = "/recommend", {"user_id": users[rng.integers(len(users))], "k": 10}
                else:
                    path, params = "/similar-items", {"item_id": items[rng.integers(len(items))], "k": 10}
                t0 = time.monotonic()
                try:
                    resp = c.get(path, params=params)
                except httpx.HTTPError as exc:
                    failures.append(f"{path}: {type(exc).__name__}: {exc}")
                    continue
                version = resp.json().get("model_version") if resp.status_code == 200 else None
                answers.append(
                    Answer(
                        t0, time.monotonic(), resp.status_code, version, resp.headers.get("X-Model-Version")
                    )
                )

    # version -> (published: CURRENT written, confirmed: the service said it serves it)
    published: dict[str, float] = {first: 0.0}
    confirmed: dict[str, float] = {first: 0.0}
    good, bad = [first], []
    admin = httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"})

    def let_traffic_flow(n: int = 150) -> None:
        target, deadline = len(answers) + n, time.monotonic() + 60
        while len(answers) < target and time.monotonic() < deadline:
            time.sleep(0.01)

    def wait_ready(predicate, what: str) -> None:
        deadline = time.monotonic() + 60
        while not predicate(admin.get("/readyz").json()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        let_traffic_flow()
        plan = ["good", "checksum", "good", "missing_manifest", "good", "good", "dims", "good"]
        for step, kind in enumerate(plan):
            via_admin = step % 2 == 1
            version = new_version_id()
            if kind == "good":
                published[version] = time.monotonic()
                store.publish(clone_model(model, version))
                if via_admin:
                    resp = admin.post("/admin/reload")
                    assert resp.status_code == 200 and resp.json()["model_version"] == version, resp.text
                else:
                    wait_ready(lambda r, v=version: r["model_version"] == v, f"poller to swap in {version}")
                confirmed[version] = time.monotonic()
                good.append(version)
            else:
                bad.append(version)
                store.publish(clone_model(model, version), make_current=False)
                damage(store.bundle_path(version), kind)
                store.backend.write_atomic("CURRENT", f"{version}\n".encode())
                if via_admin:
                    resp = admin.post("/admin/reload")
                    assert resp.status_code == 409 and version in resp.text, resp.text
                else:
                    wait_ready(lambda r, v=version: r["refused_version"] == v, f"poller to refuse {version}")
            let_traffic_flow()
        while len(answers) < MIN_REQUESTS:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    metrics = admin.get("/metrics").text
    admin.close()

    assert failures == []
    assert len(answers) >= MIN_REQUESTS
    bad_status = [a.status for a in answers if not 200 <= a.status < 300]
    assert bad_status == [], f"{len(bad_status)} non-2xx answers: {sorted(set(bad_status))}"
    assert len(good) == 6  # the first model and 5 good swaps
    order = {v: i for i, v in enumerate(good)}
    for a in answers:
        assert a.version == a.header, "body and X-Model-Version disagree"
        assert a.version in order, f"served {a.version}, which is not a good published version"
        i = order[a.version]
        assert published[a.version] <= a.ended, "answered with a version before it was published"
        newer_confirmed = [v for v in good[i + 1 :] if confirmed[v] < a.started]
        assert not newer_confirmed, f"{a.version} served after {newer_confirmed[0]} was confirmed"
    served = {a.version for a in answers}
    assert served == set(good), "traffic did not overlap every model"
    refused = sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("recserve_model_load_failures_total{")
    )
    # Each bad bundle refused (a forced /admin/reload may retry one the poller refused already),
    # every refusal logged with its reason and counted; no good bundle ever refused.
    log = [line for line in server.lines if "model load refused" in line]
    assert {v for v in bad if any(v in line for line in log)} == set(bad)
    assert not [line for line in log if any(v in line.split("; still serving")[0] for v in good)]
    assert refused == len(log) >= 3
