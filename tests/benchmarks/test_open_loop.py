"""The open-loop generator against a tiny local HTTP/1.1 keep-alive server (behaviour, not speed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmarks.open_loop import drive, run_open_loop


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn
    disable_nagle_algorithm = True  # headers and body leave at once, as uvicorn sends them

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.4)
        body = b'{"source":"computed"}' if self.path != "/missing" else b"{}"
        self.send_response(200 if self.path != "/missing" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_scheduled_request_is_sent_and_answered(server_url: str) -> None:
    out = drive(server_url, ["/a", "/b"], rate=100, duration_s=0.5, connections=2)
    assert out["scheduled"] == 50
    assert out["ok"] == 50 and out["errors"] == 0
    assert out["computed"] == 50 and out["cache"] == 0
    assert 0 < out["p50_ms"] <= out["p99_ms"] <= out["max_ms"]
    assert out["client_cpu"] >= 0


def test_non_2xx_answers_count_as_errors(server_url: str) -> None:
    out = drive(server_url, ["/missing", "/a"], rate=40, duration_s=0.5, connections=1)
    assert out["scheduled"] == 20
    assert out["ok"] == 10 and out["errors"] == 10


def test_latency_counts_from_the_due_time_not_the_send(server_url: str) -> None:
    """One connection, a 0.4 s stall first: requests due during the stall wait for it, and their
    latency includes the wait (no coordinated omission). Timed from their actual send they would
    take a millisecond each."""
    paths = ["/slow"] + ["/fast"] * 49
    out = drive(server_url, paths, rate=50, duration_s=1.0, connections=1, max_connections=1)
    assert out["ok"] == 50 and out["connections"] == 1
    # ~15 requests of 50 were due in the first 0.3 s of the stall: over 10% waited >= 0.1 s.
    assert out["p90_ms"] >= 100
    assert out["send_lag_p99_ms"] >= 100  # they left late, and that lateness is in the latency


def test_child_process_run_returns_the_summary(server_url: str) -> None:
    out = run_open_loop(server_url, ["/a"], rate=20, duration_s=0.5, connections=1)
    assert out["scheduled"] == 10 and out["ok"] == 10


def test_report_shows_the_open_loop_row_and_target() -> None:
    from benchmarks import report

    loop = {"rate": 300.0, "achieved_rps": 299.0, "errors": 0, "p50_ms": 2.0, "p99_ms": 14.0}
    loop |= {"p999_ms": 30.0, "client_cpu": 0.05}
    rec = {"rps": 600.0, "open_loop": loop, "open_loop_p99_ms": 14.0}
    results = {"sizes": [1_000_000], "concurrencies": [8], "service": {"1000000": {"recommend": rec}}}
    checks = {c["target"]: c for c in report.targets(results)}
    assert checks["/recommend computed p99, open loop at 50% of max rate (ms)"]["met"] is False
    text = report.table(results)
    assert "open loop at 50% of max" in text and "300 rps (299 answered, 0 errors); 2.00/14.00/30.00" in text
