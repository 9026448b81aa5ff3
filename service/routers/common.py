"""Pieces every list endpoint's router shares: the documented error responses and the id type."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from service.schemas import ErrorResponse

IdQuery = Annotated[str, Query(min_length=1, max_length=256)]


def error_responses(not_found: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a list endpoint; ``not_found`` says when it answers 404."""
    return {
        400: {"model": ErrorResponse, "description": "Body that cannot be decoded (e.g. not UTF-8)."},
        404: {"model": ErrorResponse, "description": not_found},
        413: {"model": ErrorResponse, "description": "Request body larger than max_body_bytes."},
        422: {"model": ErrorResponse, "description": "Invalid option; `field` names it."},
        503: {"model": ErrorResponse, "description": "No model loaded yet."},
    }
