"""One error shape for every error answer: ``{"error": {"code", "message", "field"}}``.

Domain errors (:mod:`service.exceptions`) are mapped to a status here and only here; request
validation errors are reshaped from pydantic's; framework errors (unknown route, wrong method)
keep their status and headers. Refusals that happen before the app runs (an over-long request
line) use the same shape: ``service/http_protocol.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.exceptions import EventStoreUnavailable, InvalidRequest, NoModel, NotFound, ServingError
from service.responses import FastJSONResponse
from service.schemas import UNION_TAGS

log = logging.getLogger("recserve.errors")

#: domain error class → HTTP status (the first matching base class wins)
STATUS: tuple[tuple[type[ServingError], int], ...] = (
    (NoModel, 503),
    (EventStoreUnavailable, 503),
    (NotFound, 404),
    (InvalidRequest, 422),
)
#: request fields that are not fields: where the value came from, and the tags of body unions
_NOT_FIELDS = frozenset(("body", "query", "path", "header", *UNION_TAGS))


class APIError(Exception):
    """An HTTP-level refusal outside the serving domain (admin authentication, reload conflicts)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_body(code: str, message: str, field: str | None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def status_of(exc: ServingError) -> int:
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 500)


def _field_name(error: dict[str, Any]) -> str | None:
    """Dotted path of the offending field (``item_filter.include``, ``user_ids.3``), or None when
    the body as a whole is at fault (not JSON, missing). Pydantic's ``loc`` starts with where the
    value came from (``body``/``query``/``path``) and, for bad JSON, ends with a byte offset."""
    loc = [p for p in error.get("loc", ()) if p not in UNION_TAGS]
    if error.get("type") in ("json_invalid", "model_attributes_type", "dict_type") and len(loc) <= 2:
        return None
    parts = [str(p) for p in loc if p not in _NOT_FIELDS]
    return ".".join(parts) or None


def _count_feedback_refusal(request: Request, reason: str) -> None:
    """``recserve_feedback_rejected_total{reason}``: a refused POST /feedback stores nothing."""
    if request.url.path == "/feedback":
        request.app.state.metrics.feedback_rejected.labels(reason).inc()


#: methods probed for ``Allow`` (OPTIONS and TRACE are served by no route here)
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (``Allow`` of a 405, RFC 9110 §15.5.6).

    Starlette names only the methods of the first route whose path matched; /recommend has a
    GET and a POST route, so its 405 would advertise half of them. Each method is probed with
    the routes' own matching, so included routers are searched as the router would.
    """
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServingError)
    async def _serving(request: Request, exc: ServingError) -> FastJSONResponse:
        _count_feedback_refusal(request, "storage" if isinstance(exc, EventStoreUnavailable) else "invalid")
        return FastJSONResponse(error_body(exc.code, exc.message, exc.field), status_code=status_of(exc))

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> FastJSONResponse:
        return FastJSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> FastJSONResponse:
        _count_feedback_refusal(request, "invalid")
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _field_name(dict(first))
        if first.get("type") == "json_invalid":
            detail = (first.get("ctx") or {}).get("error", "")
            message = (
                f"request body is not valid JSON ({detail})" if detail else "request body is not valid JSON"
            )
        else:
            message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        return FastJSONResponse(error_body("validation_error", message, field), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> FastJSONResponse:
        # A bug, not a client error: log it with its traceback, answer without one.
        log.exception("unhandled error")
        return FastJSONResponse(error_body("internal_error", "internal error", None), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return FastJSONResponse(
            error_body(code, str(exc.detail), None), status_code=exc.status_code, headers=headers
        )
