"""Pieces every list endpoint's router shares: the documented error responses."""

from __future__ import annotations

from typing import Any

from service.limits import MAX_URL_BYTES
from service.schemas import ErrorResponse


def error_responses(not_found: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a list endpoint; ``not_found`` says when it answers 404."""
    return {
        400: {"model": ErrorResponse, "description": "Request that cannot be decoded (e.g. not UTF-8)."},
        404: {"model": ErrorResponse, "description": not_found},
        413: {"model": ErrorResponse, "description": "Request body larger than max_body_bytes."},
        414: {"model": ErrorResponse, "description": f"Request target longer than {MAX_URL_BYTES} bytes."},
        422: {"model": ErrorResponse, "description": "Invalid option; `field` names it."},
        503: {"model": ErrorResponse, "description": "No model loaded yet."},
    }
