"""The service under load: a real uvicorn process, driven by ``wrk`` from a separate process.

Why wrk (and not an async Python client): wrk is a C event loop that spends a few microseconds
per request, so one wrk thread can push far more requests than one Python service process can
answer; a Python load generator would share the GIL-bound costs it is trying to measure and, on a
two-core machine, compete for the same core. Its Lua hooks give us rotating request paths (every
user/item of a sample, so a cache cannot silently turn the "computed" path into a cached one:
each answer's ``source`` is counted) and a JSON summary line with exact latency percentiles.
How we know wrk is not the bottleneck: the CPU time wrk and the server each used is measured
for every run (``/proc`` and ``getrusage``) and reported; the server's event loop runs near one
full core while wrk uses a fraction of one.

Every endpoint's throughput is reported as a ratio of ``/bench/baseline`` (a constant answer
through the same app) measured in the same run, before and after the other endpoints, so the
ratio survives the machine's noise better than any absolute figure.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.catalogue import Catalogue
from benchmarks.open_loop import measure_open_loop
from benchmarks.procs import drop_keys, free_port, proc_cpu_seconds, proc_pss_mb, proc_rss_mb
from service.http_protocol import PROTOCOL

LUA = r"""
local paths = {%(paths)s}
local i = 0
cache, computed = 0, 0  -- globals of each wrk thread's Lua state, read back in done()
local threads = {}
setup = function(thread) table.insert(threads, thread) end
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", paths[i])
end
response = function(status, headers, body)
  if string.find(body, '"source":"cache"', 1, true) then cache = cache + 1
  elseif string.find(body, '"source":"computed"', 1, true) then computed = computed + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local n_cache, n_computed = 0, 0
  for _, t in ipairs(threads) do
    n_cache = n_cache + t:get("cache")
    n_computed = n_computed + t:get("computed")
  end
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"socket_errors":%%d,"non_2xx":%%d,' ..
    '"p50_us":%%.1f,"p95_us":%%.1f,"p99_us":%%.1f,"mean_us":%%.1f,"max_us":%%.1f,' ..
    '"cache":%%d,"computed":%%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max,
    n_cache, n_computed))
end
"""


class BenchError(RuntimeError):
    """The benchmark cannot run (missing wrk, server did not start): one line for the CLI."""


class ServerProcess:
    """``uvicorn service.app:create_app`` in its own process, stopped by its own pid only."""

    def __init__(
        self,
        store_root: Path,
        redis_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        workers: int = 1,
    ) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECSERVE_")}
        env.update(
            RECSERVE_STORE_URI=str(Path(store_root).resolve()),
            RECSERVE_BENCH_ENDPOINTS="true",
            RECSERVE_LOG_LEVEL="warning",
        )
        if redis_url:
            env["RECSERVE_REDIS_URL"] = redis_url
        env.update(extra_env or {})
        self.cmd = [
            sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--http", PROTOCOL,
            "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        if workers > 1:  # as deployed: the bundle mapped and shared, /metrics across workers
            self.cmd = [
                sys.executable, "-m", "recserve.cli", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(workers),
            ]  # fmt: skip
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.load_seconds = 0.0
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 600.0) -> None:
        start = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        with httpx.Client(base_url=self.base_url, timeout=5) as client:
            while True:
                if self.proc.poll() is not None:
                    raise BenchError(f"service exited with status {self.proc.returncode}:\n{self.output()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - start > timeout:
                    raise BenchError(f"service not ready after {timeout:.0f} s:\n{self.output()}")
                time.sleep(0.2)
        # One ready worker answers /readyz; the others may still be loading. Loading is CPU-bound,
        # so the server has settled once its process tree stops using CPU.
        cpu = proc_cpu_seconds(self.pid)
        while time.perf_counter() - start < timeout:
            time.sleep(1.0)
            now = proc_cpu_seconds(self.pid)
            if now - cpu < 0.05:
                break
            cpu = now
        self.load_seconds = time.perf_counter() - start

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk not found on PATH: install it (Debian: apt-get install -y wrk)")
    return path


def run_wrk(
    server: ServerProcess, paths: Sequence[str], concurrency: int, duration_s: float, workdir: Path
) -> dict[str, Any]:
    """One closed-loop wrk run; returns throughput, latency percentiles and both sides' CPU use."""
    script = workdir / "bench.lua"
    script.write_text(LUA % {"paths": ",".join(json.dumps(p) for p in paths)})
    cmd = [
        wrk_binary(), "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s", "--timeout", "5s",
        "-s", str(script), server.base_url,
    ]  # fmt: skip
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu0 = proc_cpu_seconds(server.pid)
    wall0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - wall0
    server_cpu = proc_cpu_seconds(server.pid) - server_cpu0
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"wrk printed no summary: {done.stdout[-500:]}")
    summary = lines[-1]
    seconds = summary["duration_us"] / 1e6
    wrk_cpu = (after_children.ru_utime - before_children.ru_utime) + (
        after_children.ru_stime - before_children.ru_stime
    )
    answered = summary["cache"] + summary["computed"]
    return {
        "concurrency": concurrency,
        "requests": summary["requests"],
        "rps": summary["requests"] / seconds,
        "p50_ms": summary["p50_us"] / 1000,
        "p95_ms": summary["p95_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "mean_ms": summary["mean_us"] / 1000,
        "errors": summary["socket_errors"] + summary["non_2xx"],
        "cache_fraction": summary["cache"] / answered if answered else None,
        # CPU the service spent per answer: the figure least disturbed by other load on the machine
        "cpu_us_per_req": server_cpu / max(1, summary["requests"]) * 1e6,
        "server_cpu": server_cpu / wall,  # cores used by the service (1.0 = one core saturated)
        "wrk_cpu": wrk_cpu / wall,  # cores used by the load generator
    }


def endpoint_paths(cat: Catalogue, n: int = 2000, k: int = 10) -> dict[str, list[str]]:
    """Request paths per endpoint: a random sample of users / items, each visited once per cycle."""
    rng = np.random.default_rng(cat.spec.seed + 3)
    users = rng.choice(cat.spec.n_users, size=min(n, cat.spec.n_users), replace=False)
    items = rng.choice(cat.spec.n_items, size=min(n, cat.spec.n_items), replace=False)
    return {
        "baseline": ["/bench/baseline"],
        "recommend": [f"/recommend?user_id=u{u}&k={k}" for u in users],
        "similar": [f"/similar-items?item_id=i{i}&k={k}" for i in items],
    }


def post_fresh_feedback(
    server: ServerProcess, cat: Catalogue, paths: Sequence[str], per_user: int = 5
) -> None:
    """Give every user of ``paths`` (/recommend paths) ``per_user`` click events on random items,
    through POST /feedback in batches of 500."""
    users = [p.split("user_id=")[1].split("&")[0] for p in paths]
    rng = np.random.default_rng(cat.spec.seed + 5)
    events = [
        {"user_id": u, "item_id": f"i{i}", "type": "click"}
        for u in users
        for i in rng.choice(cat.spec.n_items, size=per_user, replace=False).tolist()
    ]
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        for b in range(0, len(events), 500):
            r = client.post("/feedback", json={"events": events[b : b + 500]})
            if r.status_code != 202:
                raise BenchError(f"POST /feedback answered {r.status_code}: {r.text[:300]}")


def _migrated_sqlite(directory: str) -> str:
    from eventstore import open_event_store

    url = f"sqlite:///{directory}/events.db"
    store = open_event_store(url)
    store.upgrade()
    store.close()
    return url


def _warm(server: ServerProcess, paths: Sequence[str], limit: int | None = 200) -> list[str]:
    """Request each path once (all of them, for a cache warm-up); return the answers' sources."""
    sources = []
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for p in paths[:limit] if limit else paths:
            r = client.get(p)
            if r.status_code != 200:
                raise BenchError(f"GET {p} answered {r.status_code}: {r.text[:300]}")
            sources.append(r.json().get("source", "constant"))
    return sources


def _measure(
    server: ServerProcess,
    plan: list[tuple[str, list[str]]],
    concurrencies: Sequence[int],
    duration_s: float,
    log: Any,
    n_items: int,
) -> dict[str, dict[str, Any]]:
    """Baseline, each planned endpoint, baseline again, per concurrency; ratios to the baselines' mean."""
    runs: dict[str, dict[str, Any]] = {}
    full = [("baseline", ["/bench/baseline"]), *plan, ("baseline_after", ["/bench/baseline"])]
    with tempfile.TemporaryDirectory() as tmp:
        for c in concurrencies:
            for label, paths in full:
                log(f"  {n_items:>8} items  {label:<16} c={c} …")
                runs.setdefault(label, {})[str(c)] = run_wrk(server, paths, c, duration_s, Path(tmp))
    for c in map(str, concurrencies):
        base = (runs["baseline"][c]["rps"] + runs["baseline_after"][c]["rps"]) / 2
        for label, _ in plan:
            runs[label][c]["ratio_to_baseline"] = runs[label][c]["rps"] / base
        runs["baseline"][c]["ratio_to_baseline"] = 1.0
        runs["baseline"][c]["rps_after"] = runs["baseline_after"][c]["rps"]
        runs["baseline"][c]["rps"] = base
    runs.pop("baseline_after")
    return runs


def _mark_ready(redis_url: str, prefix: str, cat: Catalogue) -> None:
    """Mark the bench model's lists as usable under ``prefix``, as ``recserve precompute`` does.

    The service reads Redis only for a version with a ``ready`` marker. Precomputing 1M items'
    similar lists is not what is being measured, so the marker is set directly and the sampled
    users' lists arrive by write-back on a first pass.
    """
    from listcache import ready_key, ready_marker
    from listcache.redis_backend import RedisBackend
    from model_store import LocalStore

    marker = ready_key(prefix, LocalStore(cat.store_root).current_version())
    backend = RedisBackend.from_url(redis_url, socket_timeout_s=5.0, connect_timeout_s=5.0)
    try:
        backend.mark_ready(marker, ready_marker(0, 0, 0, 0.0), ttl_s=3600)
    finally:
        backend.close()


def run_service(
    cat: Catalogue,
    concurrencies: Sequence[int] = (1, 8),
    duration_s: float = 5.0,
    redis_url: str | None = None,
    log: Any = print,
    workers: int = 1,
    service_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Load-test every endpoint at each concurrency; RSS after load and at the end.

    The computed paths run on a service with every cache off (``RECSERVE_CACHE_SIZE=0``, no
    Redis), so each answer is computed; the Lua hook checks that (``cache_fraction``). With
    ``redis_url``, a second service with the Redis cache under a private key prefix serves the
    cache-hit run, after one pass over the users has written their lists back; its ratio is to
    that service's own baseline. The prefix's keys are deleted afterwards.
    """
    paths = endpoint_paths(cat)
    raw_mb = (cat.embedding_bytes + cat.index_bytes) / 2**20
    result: dict[str, Any] = {"n_items": cat.spec.n_items, "endpoints": {}, "raw_mb": raw_mb}
    no_cache = {**(service_env or {}), "RECSERVE_CACHE_SIZE": "0"}
    with tempfile.TemporaryDirectory() as events_dir:
        env = {**no_cache, "RECSERVE_DATABASE_URL": _migrated_sqlite(events_dir)}
        with ServerProcess(cat.store_root, None, extra_env=env, workers=workers) as server:
            result["load_seconds"] = server.load_seconds
            result["rss_mb"], _ = proc_rss_mb(server.pid)
            result["pss_mb"] = proc_pss_mb(server.pid)
            for name in ("baseline", "recommend", "similar"):
                _warm(server, paths[name])
            plan = [("recommend", paths["recommend"]), ("similar", paths["similar"])]
            runs = _measure(server, plan, concurrencies, duration_s, log, cat.spec.n_items)
            top = runs["recommend"][str(max(concurrencies))]["rps"]  # open loop at half of it (issue 21)
            log(f"  {cat.spec.n_items:>8} items  recommend open loop at 50% of {top:.0f} rps …")
            result["open_loop"] = measure_open_loop(server, paths["recommend"], top, 0.5, duration_s)
            # The same users again, each with 5 fresh clicks (in-process fresh state): the cost of
            # the feedback loop's "at once" on the request path, paired with the run above.
            post_fresh_feedback(server, cat, paths["recommend"])
            _warm(server, paths["recommend"])
            fresh = [("recommend_fresh", paths["recommend"])]
            measured = _measure(server, fresh, concurrencies, duration_s, log, cat.spec.n_items)
            runs["recommend_fresh"] = measured["recommend_fresh"]
            result["rss_mb_after"], result["rss_peak_mb"] = proc_rss_mb(server.pid)
            result["pss_mb_after"] = proc_pss_mb(server.pid)
    if redis_url:
        prefix = f"recserve-bench-{os.getpid()}-{cat.spec.n_items}"
        env = {**no_cache, "RECSERVE_REDIS_PREFIX": prefix}
        try:
            _mark_ready(redis_url, prefix, cat)
            with ServerProcess(cat.store_root, redis_url, extra_env=env, workers=workers) as server:
                _warm(server, paths["recommend"], limit=None)  # computes once, writes each list back
                sources = _warm(server, paths["recommend"], limit=50)
                if "cache" in sources:
                    cached = _measure(
                        server,
                        [("recommend_cache", paths["recommend"])],
                        concurrencies,
                        duration_s,
                        log,
                        cat.spec.n_items,
                    )
                    runs["recommend_cache"] = cached["recommend_cache"]
                    runs["baseline_cache_server"] = cached["baseline"]
                else:
                    result["cache_skipped"] = (
                        "answers never came from the cache: is the Redis cache in this build and "
                        "does it write computed lists back?"
                    )
        finally:
            drop_keys(redis_url, prefix)
    result["endpoints"] = runs
    return result
