"""Request id and access log: a pure ASGI middleware (no ``BaseHTTPMiddleware`` task overhead).

Every HTTP request gets an id: the caller's ``X-Request-ID`` when it is a sane token (a gateway or
client that already has one keeps it end to end), else a new random one. The id is

* returned in the response's ``X-Request-ID`` header, 500s included (the middleware answers them
  itself, in the one error shape, so the header is there when a client most needs to quote it);
* put in :data:`service.logs.request_id_var`, so every log line of the request carries it.

The access log (``recserve.access``, one line per request: method, path, status, duration, model
version, the id of the API key used) is off unless ``RECSERVE_ACCESS_LOG`` is set, and samples
``RECSERVE_ACCESS_LOG_SAMPLE_RATE`` of the requests; 5xx answers are always logged. ``/metrics``,
``/healthz`` and ``/readyz`` are never logged (scrapes and probes every few seconds;
``recserve_requests_total`` counts them).
The query string is left out: it holds user ids.

With tracing on (``RECSERVE_OTEL_ENDPOINT``, :mod:`service.tracing`), the request id and the model
version are also attributes of the request's server span (``recserve.request_id``,
``recserve.model_version``), so a trace and the request's log lines find each other.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
from opentelemetry import trace

from service.errors import error_body
from service.logs import request_id_var

access_log = logging.getLogger("recserve.access")

HEADER = b"x-request-id"
# Up to 128 characters a log or a header cannot be confused by (uuids, W3C trace ids, ULIDs...).
_VALID_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The caller's ``X-Request-ID`` if it is a sane token, else None (a new one is made)."""
    for name, value in headers:
        if name.lower() == HEADER:
            return value.decode("ascii") if _VALID_ID.fullmatch(value) else None
    return None


class RequestContextMiddleware:
    """Sets the request id for the request's logs, echoes it, and writes the access log."""

    def __init__(
        self,
        app: Any,
        access_log_enabled: bool = False,
        sample_rate: float = 1.0,
        rng: Callable[[], float] = random.random,
        tracing: bool = False,
    ) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled
        self.sample_rate = sample_rate
        self.rng = rng
        self.tracing = tracing

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope.get("headers", [])) or uuid.uuid4().hex
        # Not reset when the request ends: each request runs in its own task, hence its own
        # context, and Starlette's outermost error handler and uvicorn log an unhandled exception
        # *after* this middleware has returned; they must still see the id.
        request_id_var.set(request_id)
        # The request's server span (service/tracing.py: FastAPI's, current here) gets the id.
        span = trace.get_current_span() if self.tracing else None
        if span is not None:
            span.set_attribute("recserve.request_id", request_id)
        start = time.perf_counter()
        status = 0
        model_version: str | None = None

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal status, model_version
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                for name, value in headers:
                    if name.lower() == b"x-model-version":
                        model_version = value.decode("latin-1") or None
                if span is not None and model_version is not None:
                    span.set_attribute("recserve.model_version", model_version)
                headers.append((HEADER, request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not status:  # nothing sent yet: answer here so the 500 carries the id
                await _send_internal_error(send_with_id)
            status = 500
            raise
        finally:
            self._access(scope, status, time.perf_counter() - start, model_version)

    def _access(
        self, scope: MutableMapping[str, Any], status: int, seconds: float, model_version: str | None
    ) -> None:
        if not self.access_log_enabled or scope.get("path") in _QUIET_PATHS:
            return
        if status < 500 and self.rng() >= self.sample_rate:
            return
        access_log.info(
            "request",
            extra={
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "model_version": model_version,
                "api_key_id": scope.get("recserve.api_key_id"),  # set by service.auth; never the key
            },
        )


async def _send_internal_error(send: Callable[..., Any]) -> None:
    body = orjson.dumps(error_body("internal_error", "internal error", None))
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
