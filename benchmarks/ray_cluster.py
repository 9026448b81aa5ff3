"""A real Ray cluster on loopback for the tests and benchmarks: a head and worker nodes.

Everything connects to loopback addresses on free ports, and :meth:`RayCluster.stop` kills
exactly the processes started here (by pid), never anything found by name (``ray stop`` would
stop every Ray process of the machine).

Ray nodes: ``ray start --block`` per node, each a session of its own, so a node is one process
tree and a test can SIGKILL one node's raylet. Nodes use ``127.0.0.2``, ``127.0.0.3``, …
because Ray rewrites ``127.0.0.1`` to the machine's own address; never port 6379 (Redis).
Ray's own gRPC servers listen on every interface (Ray has no option to narrow that); all of
their traffic here goes to the loopback addresses above.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.procs import free_port, process_tree

ROOT = Path(__file__).resolve().parents[1]


def _kill_tree(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


class RayNode:
    """One ``ray start --block`` process tree: a head (``address`` None) or a worker joining one."""

    def __init__(
        self,
        ip: str,
        temp_dir: Path,
        auth: dict[str, str],
        address: str | None = None,
        object_store_mb: int = 200,
        cpus: int = 1,
    ) -> None:
        self.ip = ip
        self.port = free_port() if address is None else None
        self.log_path = temp_dir / f"node-{ip}.log"
        ray_bin = Path(sys.executable).with_name("ray")
        cmd = [
            str(ray_bin),
            "start",
            "--block",
            f"--node-ip-address={ip}",
            f"--num-cpus={cpus}",
            f"--object-store-memory={object_store_mb * 2**20}",
            "--disable-usage-stats",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
        ]
        if address is None:
            cmd += ["--head", f"--port={self.port}", "--include-dashboard=false"]
            cmd += [f"--dashboard-port={free_port()}", f"--temp-dir={temp_dir}"]
        else:
            cmd += [f"--address={address}"]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "RAY_USAGE_STATS_ENABLED": "0",
            **auth,
            # notice a dead node in ~2 s instead of ~30 s (the fault test kills one)
            "RAY_health_check_period_ms": "500",
            "RAY_health_check_timeout_ms": "500",
            "RAY_health_check_failure_threshold": "4",
        }
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def wait_started(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Ray runtime started" in self.log_path.read_text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"ray node {self.ip} did not start:\n{self.log_path.read_text()[-3000:]}")

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def raylet_pid(self) -> int:
        for pid in self.pids():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
            except OSError:
                continue
        raise RuntimeError(f"no raylet under ray node {self.ip}")

    def kill_raylet(self) -> None:
        """SIGKILL this node's raylet: its workers and objects are lost, as when a machine dies."""
        os.kill(self.raylet_pid(), signal.SIGKILL)

    def stop(self) -> None:
        _kill_tree(self.pids())
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log.close()


class RayCluster:
    """A head on ``127.0.0.2`` and ``nodes - 1`` workers on ``127.0.0.3``…, one CPU each."""

    def __init__(self, nodes: int = 2, object_store_mb: int = 200) -> None:
        # short: Ray's unix socket paths live under it and must stay under 108 bytes
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rsray-"))
        # Ray's gRPC ports listen on every interface: a per-cluster token keeps strangers out.
        # A driver needs the same variables (:attr:`driver_env`).
        self.driver_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.nodes: list[RayNode] = []
        try:
            head = RayNode("127.0.0.2", self.temp_dir, self.driver_env, object_store_mb=object_store_mb)
            self.nodes.append(head)
            head.wait_started()
            for i in range(1, nodes):
                ip = f"127.0.0.{2 + i}"
                worker = RayNode(ip, self.temp_dir, self.driver_env, self.address, object_store_mb)
                self.nodes.append(worker)
                worker.wait_started()
        except BaseException:
            self.stop()
            raise

    @property
    def address(self) -> str:
        return f"{self.nodes[0].ip}:{self.nodes[0].port}"

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> RayCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
