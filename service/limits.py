"""Request-size limits: URL and body bounds, and configured limits written into the OpenAPI schema.

The body guard is a pure ASGI middleware so an oversized body is refused while it streams in
(``Content-Length`` checked up front; chunked bodies counted) instead of being parsed first.
The URL bound is enforced by the HTTP protocol (``service/http_protocol.py``), before any ASGI
code runs; the schema's query-list bounds are derived from it, so every GET the schema allows
fits (``tests/service/test_url_limits.py`` checks the arithmetic against the served schema).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
from fastapi import FastAPI

from service.schemas import ItemFilterModel
from service.settings import Settings

#: Longest request target (path + query) accepted: the limit of uvicorn's default parser
#: (httptools' ``parse_url`` refuses 65,536 bytes). Longer ones get a 414 in the one error shape.
MAX_URL_BYTES = 65_535
#: Worst case for one id in a query string: 256 characters of 4-byte UTF-8, each byte as ``%XX``.
MAX_ID_URL_BYTES = 256 * 4 * 3
#: Ids per list parameter of a GET. /recommend has two such lists and a user_id: with 10 each,
#: 21 worst-case ids plus parameter names and the scalar options stay under MAX_URL_BYTES
#: (21 x (3,072 + 18) = 64,890 of 65,535 bytes). Longer lists go in the POST body.
MAX_QUERY_IDS = 10


class BodySizeLimitMiddleware:
    """Answer 413 in the one error shape for bodies over ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Any) -> None:
        body = orjson.dumps(
            {
                "error": {
                    "code": "body_too_large",
                    "message": f"request body exceeds the limit of {self.max_bytes} bytes (max_body_bytes)",
                    "field": None,
                }
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        if any(name == b"content-length" for name, _ in scope.get("headers", ())):
            await self.app(scope, receive, send)
            return
        # No declared length (chunked): read the body here, bounded, then replay it to the app.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay([{"type": "http.request", "body": b"".join(chunks)}], receive), send)


def _replay(messages: list[MutableMapping[str, Any]], then: Any = None) -> Any:
    """A ``receive`` that returns ``messages`` first, then defers to ``then`` (disconnects)."""
    pending = list(messages)

    async def receive() -> MutableMapping[str, Any]:
        if pending:
            return pending.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive


def _set_max(schema: dict[str, Any], key: str, value: int) -> None:
    """Set ``key`` on the integer/array branch of a (possibly ``anyOf``-nullable) property."""
    branches = schema.get("anyOf", [schema])
    for branch in branches:
        if branch.get("type") in ("integer", "array"):
            branch[key] = value


def apply_limits_to_openapi(
    app: FastAPI, settings: Settings, attributes: Callable[[], list[str] | None] = lambda: None
) -> None:
    """Write ``max_k``, ``max_batch_size``, the feedback types and batch limit, and the served
    model's filter attributes into the
    served schema, so clients (and schema-driven test tools) see the limits the service enforces.

    ``attributes()`` names the item attributes the current model's filters accept (None: no model
    yet). A filter naming another attribute is refused with 422 ``unknown_attribute``, so the
    schema lists them as the allowed property names of ``ItemFilter.include``/``exclude``; after
    a swap to a model with other attributes, ``/openapi.json`` says so.
    """
    original: Callable[[], dict[str, Any]] = app.openapi
    served: dict[tuple[str, ...] | None, dict[str, Any]] = {}

    def with_limits() -> dict[str, Any]:
        schema = original()
        components = schema.get("components", {}).get("schemas", {})
        for name in ("RecommendRequest", "BatchRecommendRequest", "SimilarRequest"):
            props = components.get(name, {}).get("properties", {})
            if "k" in props:
                _set_max(props["k"], "maximum", settings.max_k)
        batch = components.get("BatchRecommendRequest", {}).get("properties", {})
        if "user_ids" in batch:
            _set_max(batch["user_ids"], "maxItems", settings.max_batch_size)
        event = components.get("FeedbackEvent", {}).get("properties", {})
        if "type" in event:  # the configured types, not any string
            event["type"] = {**event["type"], "enum": list(settings.feedback_types)}
            for bound in ("minLength", "maxLength"):
                event["type"].pop(bound, None)
        events = components.get("FeedbackBatch", {}).get("properties", {})
        if "events" in events:
            _set_max(events["events"], "maxItems", settings.feedback_max_batch)
        for path in schema.get("paths", {}).values():
            for op in path.values():
                for param in op.get("parameters", []) if isinstance(op, dict) else []:
                    if param.get("name") == "k" and param.get("in") == "query":
                        _set_max(param["schema"], "maximum", settings.max_k)
        return schema

    def openapi() -> dict[str, Any]:
        names = attributes()
        key = None if names is None else tuple(sorted(names))
        if key not in served:
            if app.openapi_schema is None:
                app.openapi_schema = with_limits()
            schema = copy.deepcopy(app.openapi_schema)
            flt = schema.get("components", {}).get("schemas", {}).get(ItemFilterModel.__name__, {})
            flt = flt.get("properties", {})
            for side in ("include", "exclude"):
                if key is not None and side in flt:
                    flt[side].setdefault("propertyNames", {})["enum"] = list(key)
            served.clear()  # only the serving model's schema is kept
            served[key] = schema
        return served[key]

    app.openapi = openapi  # type: ignore[method-assign]
