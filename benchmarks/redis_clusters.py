"""Real Redis deployments on loopback for the tests: a Redis Cluster and a Sentinel group.

Every server is a ``redis-server`` child process (no persistence) on free ports bound to
127.0.0.1; :meth:`stop` kills exactly those processes.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from benchmarks.procs import free_port


class RedisCluster:
    """``primaries`` Redis Cluster primaries with ``replicas`` replicas each, on free loopback ports.

    ``node_timeout_ms`` is ``cluster-node-timeout``: how long a silent primary has before its
    replica is promoted (Redis' default is 15 s; 2 s keeps failover tests short).
    """

    def __init__(
        self, workdir: Path, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = 2000
    ) -> None:
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        exe = shutil.which("redis-server")
        if not exe or not shutil.which("redis-cli"):
            raise RuntimeError("redis-server and redis-cli must be installed")
        try:
            for _ in range(primaries * (1 + replicas)):
                port = free_port()
                config = {
                    "port": port,
                    "bind": "127.0.0.1",
                    "cluster-enabled": "yes",
                    "cluster-port": free_port(),  # the bus; default port + 10000 may be taken
                    "cluster-config-file": workdir / f"nodes-{port}.conf",
                    "cluster-node-timeout": node_timeout_ms,
                    "save": "",
                    "appendonly": "no",
                    "dir": workdir,
                }
                self.procs[port] = subprocess.Popen(
                    [exe, *(arg for k, v in config.items() for arg in (f"--{k}", str(v)))],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            for port in self.procs:
                self._wait_ping(port)
            subprocess.run(
                [
                    *("redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.procs)),
                    *("--cluster-replicas", str(replicas), "--cluster-yes"),
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _wait_ping(port: int, timeout: float = 10.0) -> None:
        client = redis.Redis("127.0.0.1", port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on port {port}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.procs)

    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def info(self, port: int) -> dict[str, str]:
        client = redis.Redis("127.0.0.1", port, socket_timeout=2)
        try:
            text = client.execute_command("CLUSTER", "INFO")
        finally:
            client.close()
        text = text.decode() if isinstance(text, bytes) else text
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def primaries(self) -> list[int]:
        """Ports of the live primaries that own slots, as the cluster itself reports them."""
        client = redis.Redis("127.0.0.1", self.alive()[0], socket_timeout=2)
        try:
            nodes = client.execute_command("CLUSTER", "NODES")
        finally:
            client.close()
        nodes = nodes.decode() if isinstance(nodes, bytes) else nodes
        ports = []
        for line in nodes.splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8:
                ports.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        return sorted(ports)

    def _replication(self, port: int) -> dict[str, str]:
        client = redis.Redis("127.0.0.1", port, socket_timeout=2)
        try:
            return {k: str(v) for k, v in client.info("replication").items()}
        finally:
            client.close()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node reports ``cluster_state:ok`` and every live replica's link to its
        primary is up (a replica that never synced cannot be promoted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.info(p).get("cluster_state") == "ok" for p in self.alive()) and all(
                r.get("master_link_status", "up") == "up" for r in map(self._replication, self.alive())
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("redis cluster did not reach cluster_state:ok with every replica in sync")

    def wait_failover(self, dead: int, primaries: int, timeout: float = 30.0) -> None:
        """Until a replica has replaced the dead primary ``dead``: ``primaries`` live primaries own
        slots again and every live node reports ``cluster_state:ok``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owners = self.primaries()
            if dead not in owners and len(owners) == primaries:
                self.wait_ok(max(0.1, deadline - time.monotonic()))
                return
            time.sleep(0.1)
        raise RuntimeError(f"no replica replaced primary {dead} within {timeout} s")

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def __enter__(self) -> RedisCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SentinelGroup:
    """A primary, ``replicas`` replicas and ``sentinels`` Sentinels watching them as ``service``.

    ``down_after_ms`` is how long a silent primary has before the Sentinels fail it over.
    """

    def __init__(
        self,
        workdir: Path,
        replicas: int = 1,
        sentinels: int = 1,
        down_after_ms: int = 1000,
        service: str = "lists",
    ) -> None:
        self.workdir = workdir
        self.service = service
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinel_ports: list[int] = []
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server must be installed")
        base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
        try:
            self.primary = free_port()
            self.procs[self.primary] = subprocess.Popen(
                [exe, "--port", str(self.primary), *base], stdout=subprocess.DEVNULL
            )
            for _ in range(replicas):
                port = free_port()
                replicaof = ["--replicaof", "127.0.0.1", str(self.primary)]
                self.procs[port] = subprocess.Popen(
                    [exe, "--port", str(port), *base, *replicaof], stdout=subprocess.DEVNULL
                )
            for _ in range(sentinels):
                port = free_port()
                conf = workdir / f"sentinel-{port}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\n"
                    f"sentinel monitor {service} 127.0.0.1 {self.primary} {max(1, sentinels // 2 + 1)}\n"
                    f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
                    f"sentinel failover-timeout {service} 10000\n"
                )
                self.procs[port] = subprocess.Popen([exe, str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
                self.sentinel_ports.append(port)
            for port in self.procs:
                RedisCluster._wait_ping(port)
            self._wait_synced()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}"

    def master(self) -> int:
        """The port the first Sentinel currently names as the primary."""
        client = redis.Redis("127.0.0.1", self.sentinel_ports[0], socket_timeout=2)
        try:
            return int(client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)[1])
        finally:
            client.close()

    def _wait_synced(self, timeout: float = 30.0) -> None:
        """Until the primary sees every replica online and a Sentinel knows the replicas."""
        deadline = time.monotonic() + timeout
        client = redis.Redis("127.0.0.1", self.primary, socket_timeout=2)
        sentinel = redis.Redis("127.0.0.1", self.sentinel_ports[0], socket_timeout=2)
        want = len(self.procs) - 1 - len(self.sentinel_ports)
        try:
            while time.monotonic() < deadline:
                online = client.info("replication").get("connected_slaves", 0)
                known = sentinel.execute_command("SENTINEL", "REPLICAS", self.service)
                if online == want and len(known) == want:
                    return
                time.sleep(0.1)
        finally:
            client.close()
            sentinel.close()
        raise RuntimeError("replicas did not sync with the primary")

    def kill(self, port: int) -> None:
        self.procs[port].kill()
        self.procs[port].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def __enter__(self) -> SentinelGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
