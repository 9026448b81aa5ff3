"""Precompute throughput by engine: local (one process) vs Ray Data on 1 and 2 loopback nodes.

    flock /tmp/recserve-heavy.lock .venv/bin/python -m benchmarks.precompute_engines
    .venv/bin/python -m benchmarks.precompute_engines --users 20000 --items 20000 --engines local,ray1

A random-embedding model of the requested size (``benchmarks.precompute_rate.random_model``:
HNSW index, untrained ranker of the default shape) is published to a temporary store; each engine
runs as the real command line (``recserve precompute``) into its own key prefix of a private
``redis-server``. Ray clusters are started here (one CPU per node, ``benchmarks.ray_cluster``)
and stopped afterwards. Reported per run:

* ``wall``: the whole command, process start to exit (imports, cluster connection, actor start,
  model loads, the job, the marker);
* ``writing``: first key in Redis to the last (polled every 0.2 s), the steady-state part;
* ``keys/s``: keys over ``writing`` and over ``wall``;
* ``CPU-s``: CPU seconds of the command and, for Ray, of every process of the cluster (raylets,
  GCS, workers): what the machine paid;
* ``Redis bytes/key``: growth of Redis ``used_memory`` per key written (value, key, TTL and
  Redis' own per-key overhead): what sizes a Redis node.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks.precompute_rate import random_model
from benchmarks.procs import CLK_TCK, RedisProcess, process_tree
from benchmarks.ray_cluster import ROOT, RayCluster
from model_store import LocalStore
from model_store.store import clone_model


@dataclass
class Run:
    engine: str
    nodes: int
    keys: int
    wall_s: float
    writing_s: float
    cpu_s: float
    redis_bytes: int

    def row(self) -> str:
        return (
            f"| {self.engine} | {self.nodes} | {self.keys:,} | {self.wall_s:.0f} | {self.writing_s:.0f} | "
            f"{self.keys / self.writing_s:,.0f} | {self.keys / self.wall_s:,.0f} | {self.cpu_s:.0f} | "
            f"{self.redis_bytes / self.keys:,.0f} |"
        )


class KeyWatch(threading.Thread):
    """When the first and the ``expected``-th new key appeared in Redis (polled every 0.2 s)."""

    def __init__(self, url: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url, socket_timeout=30)
        self.base = self.client.dbsize()
        self.expected = expected
        self.first: float | None = None
        self.last: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            n = self.client.dbsize() - self.base
            now = time.monotonic()
            if n > 0 and self.first is None:
                self.first = now
            if n >= self.expected:
                self.last = now
                return
            time.sleep(0.2)


class CPUWatch:
    """CPU seconds spent by process trees since the watch began, per pid, so that workers which
    exit before the end (Ray's actors do) still count."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.start = self._sample()
        self.seen = dict(self.start)

    def _sample(self) -> dict[int, float]:
        out = {}
        for pid in (p for root in self.roots for p in process_tree(root)):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        return out

    def poll(self) -> None:
        for pid, cpu in self._sample().items():
            self.seen[pid] = max(cpu, self.seen.get(pid, 0.0))

    @property
    def seconds(self) -> float:
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.seen.items())


def run_engine(
    engine: str, store: Path, server: RedisProcess, expected: int, cluster: RayCluster | None, threads: int
) -> Run:
    prefix = f"bench-{engine}"
    argv = [sys.executable, "-m", "recserve.cli", "precompute", "--store", str(store)]
    argv += [
        "--redis-url",
        server.url,
        "--prefix",
        prefix,
        "--no-progress",
        "--json",
        "--threads",
        str(threads),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if cluster is not None:
        argv += ["--engine", "ray", "--ray-address", cluster.address]
        env |= cluster.driver_env
    keys = KeyWatch(server.url, expected)
    memory_before = int(keys.client.info("memory")["used_memory"])
    keys.start()
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpu = CPUWatch([proc.pid] + ([n.proc.pid for n in cluster.nodes] if cluster else []))
    out_err: list[tuple[str, str]] = []
    reader = threading.Thread(target=lambda: out_err.append(proc.communicate()))
    reader.start()
    while reader.is_alive():
        cpu.poll()
        time.sleep(0.5)
    wall = time.monotonic() - started
    keys.done.set()
    keys.join()
    out, err = out_err[0]
    if proc.returncode != 0 or keys.first is None or keys.last is None:
        raise RuntimeError(f"{engine} failed:\n{err[-3000:]}")
    report = json.loads(out.strip().splitlines()[-1])
    memory = int(keys.client.info("memory")["used_memory"]) - memory_before
    keys.client.close()
    nodes = len(cluster.nodes) if cluster else 1
    return Run(engine, nodes, report["keys"], wall, keys.last - keys.first, cpu.seconds, memory)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--engines", default="local,ray1,ray2", help="comma-separated: local, ray1, ray2")
    parser.add_argument("--threads", type=int, default=1, help="torch/FAISS threads per process or worker")
    args = parser.parse_args()
    engines = args.engines.split(",")
    # `timeout` sends SIGTERM: exit through the `with` blocks so the Ray nodes and Redis stop too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="precompute-engines-") as tmp:
        store = Path(tmp) / "store"
        LocalStore(store).publish(clone_model(random_model(args.users, args.items, args.dim), "bench"))
        print(
            f"model: {args.users:,} users x {args.items:,} items, dim {args.dim}, published in "
            f"{time.perf_counter() - started:.0f} s; {os.cpu_count()} CPUs on this machine",
            flush=True,
        )
        expected = args.users + args.items
        server = RedisProcess.on_free_port(Path(tmp))
        runs = []
        try:
            for engine in engines:
                load = " ".join(f"{x:.1f}" for x in os.getloadavg())
                print(f"{engine}: starting; 1/5/15-min load average {load}", flush=True)
                if engine == "local":
                    runs.append(run_engine("local", store, server, expected, None, args.threads))
                else:
                    with RayCluster(nodes=int(engine.removeprefix("ray"))) as cluster:
                        runs.append(run_engine(engine, store, server, expected, cluster, args.threads))
                print(runs[-1].row(), flush=True)
        finally:
            server.kill()
    print(
        "\n| engine | nodes (1 CPU each) | keys | wall s | writing s | keys/s writing | keys/s wall | CPU-s "
        "| Redis bytes/key |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(run.row())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
