"""kill -9 of a real ``recserve serve`` under a stream of feedback: every event that got a 202 is
in the event store exactly once, on both backends. The API process is the database client, so
this is also a kill of the client right after its commits.

Four writer threads post batches of 1–4 events with unique event_ids over loopback; the server
is killed (SIGKILL) once 150 batches were acknowledged or 3 s passed, whichever comes first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from benchmarks.procs import free_port
from eventstore import open_event_store

ROOT = Path(__file__).resolve().parents[2]
ACKED_BATCHES, SECONDS = 150, 3.0


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    store = open_event_store(url)
    store.upgrade()
    store.close()
    return url


def start_server(store: Path, database_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSERVE_")}
    env.update(
        PYTHONPATH=str(ROOT),
        RECSERVE_DATABASE_URL=database_url,
        RECSERVE_STORE_POLL_INTERVAL="0",
        RECSERVE_LOG_LEVEL="warning",
    )
    cmd = [
        sys.executable,
        "-m",
        "recserve.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--store",
        str(store),
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server not ready in 120 s")


def test_every_acknowledged_event_survives_kill_9(
    published_store: Path, migrated_url: str, tmp_path: Path
) -> None:
    proc, base = start_server(published_store, migrated_url, tmp_path)
    acked: list[str] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    enough = threading.Event()

    def writer(w: int) -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            for b in range(10_000):
                ids = [f"w{w}-b{b}-e{j}" for j in range(1 + (b % 4))]
                body = {
                    "events": [
                        {"user_id": f"u{b % 50}", "item_id": f"i{j}", "type": "click", "event_id": i}
                        for j, i in enumerate(ids)
                    ]
                }
                try:
                    r = client.post("/feedback", json=body)
                except httpx.TransportError:
                    return  # the server is gone
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code == 202:
                        assert r.json()["accepted"] == len(ids)
                        acked.extend(ids)
                        if statuses[202] >= ACKED_BATCHES:
                            enough.set()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        enough.wait(SECONDS)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        for t in threads:
            t.join(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert set(statuses) == {202}, statuses
    assert statuses[202] > 10  # the stream was really running when the server died

    store = open_event_store(migrated_url)
    try:
        stored = Counter(e.event_id for e in store.read())
    finally:
        store.close()
    assert max(stored.values()) == 1  # exactly once
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    print(f"{statuses[202]} batches / {len(acked)} events acknowledged before kill -9; {len(stored)} stored")
