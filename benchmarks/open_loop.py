"""Open-loop (constant-rate) load: latency the way an SRE reads it, without coordinated omission.

``python -m benchmarks.open_loop --url http://127.0.0.1:8000 --rate 300 --duration 10 \
--path /recommend?user_id=u1&k=10``

wrk is closed loop: each connection sends its next request only when the previous answer came
back, so when the server stalls the load stalls with it and the requests that *would* have been
sent during the stall are never timed (coordinated omission); its p99 at saturation measures the
queue it builds itself. Here request *i* is due at ``t0 + i / rate`` whatever happened before, and
its latency is measured from that due time, not from when it actually left: a stall shows up in
every request that was due during it.

Why our own generator (and not httperf, Debian's open-loop tool): httperf reports no latency
percentiles (only min/avg/max/stddev of replies), times from the actual send and opens a
connection per call unless told otherwise; wrk2 (wrk with ``-R`` and corrected percentiles) is not
packaged in Debian. The rates measured here are modest (half of what one Python service process
answers, a few hundred per second), so an asyncio client is cheap enough: HTTP/1.1 keep-alive over
a pool of connections (opened before the clock starts; more are opened when every one is busy,
up to ``max_connections``), uvloop when installed. Its own CPU (``getrusage`` of this process) and
how late it dispatched requests are reported, so an overloaded generator is visible, and
:func:`run_open_loop` runs it in a child process so it shares nothing with the caller.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Pool:
    """Idle keep-alive connections; a new one is opened when all are busy (up to ``limit``)."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: asyncio.Queue[Conn] = asyncio.Queue()
        self.opened = 0

    async def open(self) -> None:
        self.opened += 1
        try:
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))
        except OSError:
            self.opened -= 1
            raise

    async def get(self) -> Conn:
        if self.idle.empty() and self.opened < self.limit:
            await self.open()
        return await self.idle.get()

    def put(self, conn: Conn) -> None:
        self.idle.put_nowait(conn)

    def discard(self, conn: Conn) -> None:
        self.opened -= 1
        conn[1].close()


async def _request(conn: Conn, raw: bytes) -> tuple[int, bytes]:
    """Send one GET, read one response (Content-Length bodies only, as the service sends)."""
    reader, writer = conn
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("response without Content-Length")
    return status, await reader.readexactly(length)


async def _drive(
    url: str,
    paths: Sequence[str],
    rate: float,
    duration_s: float,
    connections: int,
    max_connections: int,
    timeout_s: float,
) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raws = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for p in paths]
    pool = _Pool(host, port, max(connections, max_connections))
    for _ in range(connections):
        await pool.open()
    n = max(1, int(rate * duration_s))
    latency = np.full(n, np.nan)  # seconds from the due time to the whole answer read
    lag = np.zeros(n)  # seconds from the due time to the request being written
    status = np.zeros(n, np.int16)  # 0: no answer (error or timeout)
    counts = {"cache": 0, "computed": 0}

    async def one(i: int, due: float) -> None:
        conn = await pool.get()
        lag[i] = time.perf_counter() - due
        try:
            async with asyncio.timeout(timeout_s):  # no extra task per request, unlike wait_for
                code, body = await _request(conn, raws[i % len(raws)])
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError):
            pool.discard(conn)
            return
        latency[i] = time.perf_counter() - due
        status[i] = code
        pool.put(conn)
        if b'"source":"cache"' in body:
            counts["cache"] += 1
        elif b'"source":"computed"' in body:
            counts["computed"] += 1

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    tasks = []
    t0 = time.perf_counter() + 0.05
    i = 0
    while i < n:
        now = time.perf_counter()
        while i < n and t0 + i / rate <= now:  # everything due by now leaves now
            tasks.append(asyncio.create_task(one(i, t0 + i / rate)))
            i += 1
        if i < n:  # timers have 1 ms resolution (libuv): a shorter sleep would spin the loop
            await asyncio.sleep(max(0.001, t0 + i / rate - time.perf_counter()))
    await asyncio.wait(tasks, timeout=timeout_s + 1.0)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for t in tasks:
        t.cancel()
    while not pool.idle.empty():
        pool.idle.get_nowait()[1].close()
    answered = latency[~np.isnan(latency)]
    ms = np.percentile(answered, [50, 90, 99, 99.9]) * 1000 if answered.size else [float("nan")] * 4
    ok = int(np.sum(status == 200))
    return {
        "rate": rate,
        "scheduled": n,
        "ok": ok,
        "errors": n - ok,
        "achieved_rps": ok / wall,
        "p50_ms": float(ms[0]),
        "p90_ms": float(ms[1]),
        "p99_ms": float(ms[2]),
        "p999_ms": float(ms[3]),
        "max_ms": float(answered.max() * 1000) if answered.size else float("nan"),
        "mean_ms": float(answered.mean() * 1000) if answered.size else float("nan"),
        "send_lag_p99_ms": float(np.percentile(lag, 99) * 1000),
        "connections": pool.opened,
        "client_cpu": (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / wall,
        "cache": counts["cache"],
        "computed": counts["computed"],
    }


def drive(
    url: str,
    paths: Sequence[str],
    rate: float,
    duration_s: float,
    connections: int = 8,
    max_connections: int = 256,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """One open-loop run in this process (on uvloop when installed); see the module doc."""
    if rate <= 0 or duration_s <= 0 or not paths:
        raise ValueError("rate and duration must be positive and paths non-empty")
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(_drive(url, paths, rate, duration_s, connections, max_connections, timeout_s))


def run_open_loop(
    url: str, paths: Sequence[str], rate: float, duration_s: float, connections: int = 8
) -> dict[str, Any]:
    """:func:`drive` in a child process (its CPU is its own); the child's JSON summary."""
    with tempfile.TemporaryDirectory() as tmp:
        path_file = Path(tmp) / "paths.txt"
        path_file.write_text("\n".join(paths))
        cmd = [
            sys.executable, "-m", "benchmarks.open_loop", "--url", url, "--rate", str(rate),
            "--duration", str(duration_s), "--paths-file", str(path_file),
            "--connections", str(connections),
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=duration_s + 120)
    if done.returncode != 0:
        raise RuntimeError(f"open-loop generator failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_open_loop(
    server: Any, paths: Sequence[str], max_rps: float, fraction: float = 0.5, duration_s: float = 10.0
) -> dict[str, Any]:
    """Open-loop run at ``fraction`` of ``max_rps`` (the closed-loop rate measured just before, on
    the same server) against a :class:`~benchmarks.service.ServerProcess`; adds the server's CPU.
    At least 10 s, so the p99 rests on a few dozen slowest requests even at low rates."""
    from benchmarks.procs import proc_cpu_seconds

    duration_s = max(10.0, duration_s)
    cpu0, wall0 = proc_cpu_seconds(server.pid), time.perf_counter()
    out = run_open_loop(server.base_url, paths, fraction * max_rps, duration_s)
    out["server_cpu"] = (proc_cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - wall0)
    return {**out, "fraction_of_max": fraction, "max_rps": max_rps, "duration_s": duration_s}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="constant-rate HTTP load; latency from each due time")
    ap.add_argument("--url", required=True, help="http://host:port")
    ap.add_argument("--rate", type=float, required=True, help="requests per second")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of scheduled requests")
    ap.add_argument("--path", action="append", default=[], help="request path (repeat; rotated)")
    ap.add_argument("--paths-file", type=Path, default=None, help="one request path per line")
    ap.add_argument("--connections", type=int, default=8, help="keep-alive connections opened first")
    args = ap.parse_args(argv)
    paths = list(args.path)
    if args.paths_file:
        paths += [p for p in args.paths_file.read_text().splitlines() if p]
    print(json.dumps(drive(args.url, paths or ["/"], args.rate, args.duration, args.connections)))


if __name__ == "__main__":
    main()
