"""One error shape for every 4xx: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.responses import FastJSONResponse

log = logging.getLogger("recserve.errors")


class APIError(Exception):
    """Raised by handlers for an expected client or availability error."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _body(code: str, message: str, field: str | None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def _field_name(error: dict[str, Any]) -> str | None:
    """Dotted path of the offending field (``item_filter.include``, ``user_ids.3``), or None when
    the body as a whole is at fault (not JSON, missing). Pydantic's ``loc`` starts with where the
    value came from (``body``/``query``/``path``) and, for bad JSON, ends with a byte offset."""
    if (
        error.get("type") in ("json_invalid", "model_attributes_type", "dict_type")
        and len(error.get("loc", ())) <= 2
    ):
        return None
    parts = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> FastJSONResponse:
        return FastJSONResponse(_body(exc.code, exc.message, exc.field), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> FastJSONResponse:
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
        return FastJSONResponse(_body("validation_error", message, field), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> FastJSONResponse:
        # A bug, not a client error: log it with its traceback, answer without one.
        log.exception("unhandled error")
        return FastJSONResponse(_body("internal_error", "internal error", None), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        return FastJSONResponse(_body(code, str(exc.detail), None), status_code=exc.status_code)
