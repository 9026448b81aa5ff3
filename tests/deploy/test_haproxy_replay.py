"""The project's HAProxy config replays a read whose replica dies holding it, whatever the TCP
segments the request came in: the regression test of the "server disconnected without a
response" seen once in ~3,000 requests at the replica kill of test_replicas_haproxy.py.

Cause (HAProxy 2.6, src/stconn.c): HAProxy keeps a copy of a request for an L7 retry only if the
request was complete when it started forwarding it. A POST whose JSON body came in a second TCP
segment (httpx writes headers and body separately) was forwarded header-first, so its retry flag
was dropped; when its replica died without answering, HAProxy closed the client's keep-alive
connection without a response (the "client must retry" path). ``option http-buffer-request``
makes HAProxy wait for the whole body first. Two stand-in servers make it deterministic: one
answers its health checks and then resets every request it is sent (a replica killed with the
request in its socket), the other answers. Without the option, this test fails.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from deploy.helpers import free_port, haproxy_servers, haproxy_stats, render_haproxy_config, require_binary

BODY = json.dumps({"user_id": "u1", "k": 10}).encode()


class StandIn:
    """A tiny HTTP/1.1 server on loopback: answers /readyz (HAProxy's check); any other request
    gets a JSON 200 (``dies=False``) or a TCP reset once its headers arrived (``dies=True``)."""

    def __init__(self, dies: bool) -> None:
        self.dies = dies
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                if b"\r\n\r\n" not in buf:
                    continue
                head, _, rest = buf.partition(b"\r\n\r\n")
                if b"/readyz" in head.split(b"\r\n", 1)[0]:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                    return
                self.requests += 1
                if self.dies:  # SO_LINGER 0: close sends RST, like a SIGKILLed process's sockets
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                headers = head.lower().split(b"\r\n")
                lengths = [h.split(b":")[1] for h in headers if h.startswith(b"content-length")]
                length = int(lengths[0]) if lengths else 0
                while len(rest) < length:
                    rest += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                buf = rest[length:]

    def close(self) -> None:
        self.sock.close()


def _post_in_two_segments(sock: socket.socket, reader, path: str) -> int | None:  # type: ignore[no-untyped-def]
    """One POST on a kept-alive connection, its body 50 ms after its headers; the status, or None
    when the connection was closed without an answer."""
    try:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (path.encode(), len(BODY))
        )
        time.sleep(0.05)
        sock.sendall(BODY)
        status = reader.readline()
    except OSError:
        return None
    if not status:
        return None
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    reader.read(length)
    return int(status.split()[1])


def test_a_post_read_whose_replica_dies_is_replayed_even_when_its_body_came_separately(
    tmp_path: Path, children: list[subprocess.Popen]
) -> None:
    haproxy = require_binary("haproxy", "haproxy")
    dying, healthy = StandIn(dies=True), StandIn(dies=False)
    lb_port, stats_port = free_port(), free_port()
    cfg = render_haproxy_config(tmp_path, lb_port, stats_port, [dying.port, healthy.port])
    log = tmp_path / "haproxy.log"
    with log.open("wb") as out:
        children.append(subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=out, stderr=out))
    stats = f"http://127.0.0.1:{stats_port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if set(haproxy_servers(stats).values()) == {"UP"}:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    else:
        pytest.fail(f"both stand-ins UP in HAProxy\n{log.read_text()[-2000:]}")
    try:
        with socket.create_connection(("127.0.0.1", lb_port), timeout=10) as sock:
            reader = sock.makefile("rb")
            # the first request of a connection too, then later ones (HAProxy treats them apart)
            statuses = [_post_in_two_segments(sock, reader, "/recommend") for _ in range(6)]
    finally:
        dying.close()
        healthy.close()
    assert dying.requests >= 1, "no request reached the dying replica: the test proved nothing"
    assert statuses == [200] * 6, f"{statuses}\n{log.read_text()[-3000:]}"
    backend = next(r for r in haproxy_stats(stats) if r["pxname"] == "api" and r["svname"] == "BACKEND")
    assert int(backend["wretr"]) + int(backend["wredis"]) >= dying.requests
