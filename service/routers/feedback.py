"""``POST /feedback``: interactions in, durably; 202 once committed."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from service.feedback import Feedback
from service.parsing import FeedbackPost
from service.responses import FastJSONResponse
from service.schemas import ErrorResponse, FeedbackResponse


async def _feedback(request: Request) -> Feedback:
    return request.app.state.feedback


router = APIRouter(tags=["feedback"])
ERRORS: dict[int | str, dict] = {
    400: {"model": ErrorResponse, "description": "Request that cannot be decoded (e.g. not UTF-8)."},
    413: {"model": ErrorResponse, "description": "Request body larger than max_body_bytes."},
    422: {
        "model": ErrorResponse,
        "description": "A bad event; `field` names it (events.<i>.<field> in a batch).",
    },
    503: {"model": ErrorResponse, "description": "The event store is unavailable: nothing was stored."},
}


@router.post("/feedback", status_code=202, response_model=FeedbackResponse, responses=ERRORS)
async def feedback(
    command: FeedbackPost, service: Annotated[Feedback, Depends(_feedback)]
) -> FastJSONResponse:
    """One event ``{"user_id", "item_id", "type", ...}`` or ``{"events": [...]}``.

    Answered 202 only after the events are committed to the event store; a batch is stored
    whole or not at all (one bad event refuses it, naming ``events.<i>.<field>``). The same
    ``event_id`` is stored once (counted in ``duplicates``). Users and items the model does not
    know are accepted and counted. A known user's events shape their next /recommend answer.
    """
    result = await asyncio.to_thread(service.ingest, command)
    return FastJSONResponse(result.body(), status_code=202)
