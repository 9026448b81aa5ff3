"""``recserve serve --workers 2``: /metrics adds up every worker's counts; the bundle is mapped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from deploy.helpers import free_port, stop
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from benchmarks.procs import proc_cpu_seconds, proc_pss_mb
from model_store import LocalStore
from tests.ops.serve_support import wait_until_ready

pytestmark = pytest.mark.slow
LABELS = ["endpoint", "method", "status"]
SIMILAR = ["/similar-items", "GET", "200"]


def _stale_counter(prom: Path) -> None:
    """A counter file of an earlier run: the new run must not add it to its own counts."""
    prom.mkdir()
    d = MmapedDict(str(prom / "counter_999999.db"))
    name = "recserve_requests"
    d.write_value(mmap_key(name, name + "_total", LABELS, SIMILAR, "stale"), 1000.0, 0.0)
    d.close()


def _per_worker(prom: Path) -> dict[str, float]:
    """/similar-items 200s counted in each worker's own counter file."""
    out = {}
    for f in prom.glob("counter_*.db"):
        for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(str(f)):
            if "recserve_requests_total" in key and '"/similar-items"' in key and '"200"' in key:
                out[f.name] = out.get(f.name, 0.0) + value
    return out


def _workers(supervisor: int) -> list[int]:
    """The supervisor's children that are workers: forked from it (recserve/workers.py), so
    their command line is the supervisor's; multiprocessing's resource tracker, if any, is not."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(c) for c in children if "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text()]


def _scraped_total(text: str) -> float:
    pattern = r'^recserve_requests_total\{endpoint="/similar-items",method="GET",status="200"\} (\S+)$'
    return sum(float(m) for m in re.findall(pattern, text, re.M))


def test_two_workers_metrics_add_up(published_store: Path, tmp_path: Path) -> None:
    port = free_port()
    prom = tmp_path / "prom"
    _stale_counter(prom)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSERVE_")}
    env.update(
        RECSERVE_STORE_POLL_INTERVAL="0", RECSERVE_LOG_FORMAT="text", PROMETHEUS_MULTIPROC_DIR=str(prom)
    )
    cmd = [sys.executable, "-m", "recserve.cli", "serve", "--port", str(port), "--workers", "2"]
    cmd += ["--store", str(published_store)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=out)
    model, _ = LocalStore(published_store).load()
    item = model.item_ids.external(0)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(proc, base, log)
        assert not (prom / "counter_999999.db").exists()  # emptied at start
        sent = 0
        # A new connection per request: the kernel hands them to either worker. Keep going until
        # both have answered some (bounded), so the sum really spans two processes.
        while sent < 600 and (sent < 40 or len([v for v in _per_worker(prom).values() if v]) < 2):
            resp = httpx.get(f"{base}/similar-items", params={"item_id": item, "k": 3}, timeout=10)
            assert resp.status_code == 200
            sent += 1
        counts = _per_worker(prom)
        assert len([v for v in counts.values() if v]) == 2, counts
        for _ in range(4):  # whichever worker answers the scrape reports every worker's count
            text = httpx.get(f"{base}/metrics", timeout=10).text
            assert _scraped_total(text) == sent
        # process_*: the whole server (supervisor and both workers), not the worker that answered
        cpu_before = proc_cpu_seconds(proc.pid)
        text = httpx.get(f"{base}/metrics", timeout=10).text
        cpu_after, pss = proc_cpu_seconds(proc.pid), proc_pss_mb(proc.pid) * 2**20
        cpu = float(re.search(r"^process_cpu_seconds_total (\S+)$", text, re.M).group(1))
        assert cpu_before - 0.02 <= cpu <= cpu_after + 0.02, (cpu_before, cpu, cpu_after)
        memory = float(re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M).group(1))
        assert abs(memory - pss) < 0.1 * pss, (memory, pss)
        assert memory > 1.5 * max(proc_pss_mb(w) for w in _workers(proc.pid)) * 2**20  # more than one worker
        assert re.search(r'^recserve_model_info\{version="[^"]+"\} 1\.0$', text, re.M)
    finally:
        stop(proc)
    assert proc.returncode is not None


def _children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_a_dead_worker_is_replaced_and_stop_ends_them_all(published_store: Path, tmp_path: Path) -> None:
    """The supervisor forks a new worker when one dies; SIGTERM to it stops every worker."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSERVE_")}
    env.update(RECSERVE_STORE_POLL_INTERVAL="0", RECSERVE_LOG_FORMAT="text")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prom")
    cmd = [sys.executable, "-m", "recserve.cli", "serve", "--port", str(port), "--workers", "2"]
    cmd += ["--store", str(published_store)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        deadline = time.monotonic() + 120
        while not (ready() and len(_children(proc.pid)) == 2):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "server not ready in 120 s"
            time.sleep(0.2)
        first = _children(proc.pid)
        victim = min(first)
        os.kill(victim, 9)
        deadline = time.monotonic() + 60
        while True:
            now = _children(proc.pid)
            if len(now) == 2 and victim not in now and ready():
                break
            assert time.monotonic() < deadline, f"no replacement worker: {now}"
            time.sleep(0.2)
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        workers = _children(proc.pid)
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    for pid in workers:  # no worker outlives its supervisor
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
