"""``recserve serve`` writes each response in one piece (see service/coalescing.py)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from recserve import commands
from service.coalescing import CoalescingTransport
from service.http_protocol import PROTOCOL
from service.http_protocol import HttpProtocol as CoalescingHTTPProtocol

REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


class FakeTransport:
    """What uvicorn's protocol needs of a transport; records every write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def _app(pause_between: bool) -> Any:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        if pause_between:  # a streaming-style app that yields to the loop between headers and body
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _serve_one(pause_between: bool) -> list[bytes]:
    async def run() -> list[bytes]:
        config = uvicorn.Config(_app(pause_between), http=CoalescingHTTPProtocol, log_level="warning")
        config.load()
        protocol = CoalescingHTTPProtocol(config=config, server_state=ServerState(), app_state={})
        transport = FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(REQUEST)
        for _ in range(100):
            await asyncio.sleep(0.005)
            if b"".join(transport.writes).endswith(b"ok"):
                break
        protocol.connection_lost(None)
        return transport.writes

    return asyncio.run(run())


def test_headers_and_body_of_a_response_are_one_write() -> None:
    writes = _serve_one(pause_between=False)
    assert len(writes) == 1, writes
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\nok")


def test_a_response_that_yields_between_headers_and_body_is_still_written_completely() -> None:
    """Coalescing is per loop iteration: an app that awaits in between gets two writes, in order."""
    writes = _serve_one(pause_between=True)
    assert len(writes) == 2 and writes[1] == b"ok" and writes[0].startswith(b"HTTP/1.1 200 OK")


def test_close_flushes_pending_writes_and_nothing_is_written_after_close() -> None:
    async def run() -> FakeTransport:
        inner = FakeTransport()
        t = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"a")
        t.write(memoryview(b"b"))
        t.write(b"")
        t.close()
        t.write(b"late")
        await asyncio.sleep(0)
        assert t.is_closing()  # everything else is the wrapped transport's
        return inner

    inner = asyncio.run(run())
    assert inner.writes == [b"ab"] and inner.closed


def test_recserve_serve_uses_the_coalescing_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    monkeypatch.setattr("service.app.create_app", lambda settings: object())
    monkeypatch.setenv("RECSERVE_STORE_URI", "var/none")  # --workers > 1 sets it; restored after
    # --workers > 1 forks workers that each run a uvicorn Server with the same settings
    # (recserve/workers.py); the kwargs it is given are what reaches uvicorn.
    monkeypatch.setattr("recserve.workers.serve_forked", lambda settings, n, kw: seen.update(kw) or 0)
    for workers in (1, 2):
        seen.clear()
        args = argparse.Namespace(host="127.0.0.1", port=0, store="var/none", workers=workers)
        assert commands.serve(args) == 0
        assert seen["http"] == PROTOCOL, workers
