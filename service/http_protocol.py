"""uvicorn's HTTP protocol, answering requests it cannot parse in the one JSON error shape.

uvicorn refuses a request it cannot parse (an over-long request target, a malformed request
line) before any ASGI code runs, with a ``text/plain`` 400 — the only answer of the service
outside ``{"error": {"code", "message", "field"}}``. This subclass of uvicorn's httptools
protocol (its default, part of ``uvicorn[standard]``) writes the same refusal as JSON, and
stops reading a request target as soon as it exceeds :data:`~service.limits.MAX_URL_BYTES`
(414 ``uri_too_long``) instead of buffering all of it first.

Used by ``recserve serve``; elsewhere pass ``--http service.http_protocol:HttpProtocol`` to uvicorn.
"""

from __future__ import annotations

import asyncio
import http

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.coalescing import CoalescingTransport
from service.limits import MAX_URL_BYTES

#: the uvicorn ``http`` setting that selects this protocol, for the command line and ``uvicorn.run``
PROTOCOL = "service.http_protocol:HttpProtocol"


class _URLTooLong(Exception):
    pass


def error_response(status: int, code: str, message: str, extra_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete HTTP/1.1 response (the connection is closed after it) with the one error body."""
    body = orjson.dumps({"error": {"code": code, "message": message, "field": None}})
    head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode()]
    head += [name + b": " + value + b"\r\n" for name, value in extra_headers]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class HttpProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with JSON refusals, an early stop on over-long targets, and each
    response written in one piece (:class:`~service.coalescing.CoalescingTransport`: a replica
    killed mid-answer sends all of it or nothing, which HAProxy can replay)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, asyncio.get_running_loop()))  # type: ignore[arg-type]

    _url_too_long = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_too_long = False

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._url_too_long = True
            raise _URLTooLong  # the parser reports a callback error: send_400_response follows

    def send_400_response(self, msg: str) -> None:
        if self._url_too_long:
            response = error_response(
                414,
                "uri_too_long",
                f"request target longer than {MAX_URL_BYTES} bytes; send long id lists in a POST body",
                self.server_state.default_headers,
            )
        else:
            response = error_response(400, "bad_request", msg, self.server_state.default_headers)
        self.transport.write(response)
        self.transport.close()
