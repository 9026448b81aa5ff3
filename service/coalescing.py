"""Each response written to the socket in one piece, so a load balancer can replay it.

Why: uvicorn writes a response's status line and headers to the socket as soon as the app sends
``http.response.start``, and the body in a second write. A replica killed (``kill -9``, OOM)
between the two leaves HAProxy holding a status line without a body; it has already forwarded
the headers, so it cannot replay the request on another replica and the client sees a broken
response. Measured: 1 such request in two runs of ``tests/deploy/test_replicas_haproxy.py``
(3,000 requests, one replica killed) before this change, none after.

:class:`CoalescingTransport` holds every write until the end of the current event-loop
iteration and then writes everything in one ``send``: the headers and body of a response that
the app sends without awaiting in between (every JSON response here) reach the kernel together
or not at all. A kill then either delivers the whole answer or none of it, and "none of it" is
what HAProxy's ``retry-on empty-response`` replays. The cost is one ``call_soon`` per write and
one system call fewer per response.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    """A transport proxy whose writes are joined and flushed at the end of the loop iteration.

    Everything except ``write`` and ``close`` (flow control, ``get_extra_info``, ``is_closing``…)
    is the wrapped transport's own. ``close`` flushes first, so nothing written is lost; data
    still pending when the connection is lost is dropped, as the transport would drop it.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
