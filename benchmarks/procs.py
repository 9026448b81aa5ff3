"""Child processes on free ports (a ``redis-server``, the service under uvicorn) and what they use.

Shared by the benchmarks and the integration tests, so both measure and test the service the way
it is deployed — a separate process speaking HTTP — and neither leaves a process behind.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

from service.http_protocol import PROTOCOL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn ``--workers N`` answers from child processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def proc_rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB of ``pid`` and its descendants, from /proc."""
    rss = peak = 0.0
    for p in process_tree(pid):
        fields = {}
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                fields[key] = value
        except OSError:
            continue
        rss += int(fields["VmRSS"].split()[0]) / 1024
        peak += int(fields["VmHWM"].split()[0]) / 1024
    return rss, peak


def proc_pss_mb(pid: int) -> float:
    """Proportional set size in MiB of ``pid`` and its descendants: a page shared by N processes
    counts 1/N in each, so the sum is the memory the tree really holds (RSS counts shared pages,
    such as a memory-mapped bundle, once per worker)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
                    break
        except OSError:
            continue
    return total


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    total = 0.0
    for p in process_tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        parts = stat[stat.rindex(")") + 2 :].split()
        total += (int(parts[11]) + int(parts[12])) / CLK_TCK  # utime + stime
    return total


class RedisProcess:
    """A ``redis-server`` without persistence (a restart loses every key) on ``port``."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def on_free_port(cls, workdir: Path, attempts: int = 5) -> RedisProcess:
        """Start on a free port, retrying if another process grabs the port first."""
        for _ in range(attempts):
            server = cls(free_port(), workdir)
            try:
                server.start()
                return server
            except RuntimeError:
                server.kill()
        raise RuntimeError("could not start a redis-server on a free port")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is not installed")
        cmd = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*cmd, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class ServiceProcess:
    """``uvicorn service.app:create_app --factory --port 0`` with the service's HTTP protocol
    (``service/http_protocol.py``, as ``recserve serve`` uses it); the port is read from its log.
    ``command`` runs another command line instead (``recserve serve --port 0`` itself).

    ``env`` is the whole environment (settings come from ``RECSERVE_*``); ``cwd`` should hold no
    ``.env`` file unless one is wanted.
    """

    def __init__(
        self, env: dict[str, str], cwd: Path, timeout: float = 60.0, command: list[str] | None = None
    ) -> None:
        cmd = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--http", PROTOCOL]
        cmd += ["--host", "127.0.0.1", "--port", "0", "--no-access-log", "--log-level", "info"]
        self.proc = subprocess.Popen(
            command or cmd,
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = self._wait_for_port(timeout)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self._lines.put(line)

    def _wait_for_port(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            if found:
                return found.group(1)
        self.stop()
        raise RuntimeError("service did not start:\n" + "".join(self.log))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def drop_keys(redis_url: str, prefix: str) -> None:
    """Delete a benchmark's own keys (its private prefix) from Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()
