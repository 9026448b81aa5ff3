"""``/recommend`` and ``/recommend/batch``: top-k items for one user or many."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import PipelineDep
from service.responses import FastJSONResponse
from service.schemas import (
    MAX_LIST_IDS,
    MAX_RECENT_ITEMS,
    BatchRecommendRequest,
    BatchRecommendResponse,
    ErrorResponse,
    RecommendRequest,
    RecommendResponse,
)

router = APIRouter(tags=["recommend"])
ERRORS = {
    400: {"model": ErrorResponse, "description": "Body that cannot be decoded (e.g. not UTF-8)."},
    404: {"model": ErrorResponse, "description": "Unknown user (only with cold_start_fallback=error)."},
    413: {"model": ErrorResponse, "description": "Request body larger than max_body_bytes."},
    422: {"model": ErrorResponse, "description": "Invalid option; `field` names it."},
    503: {"model": ErrorResponse, "description": "No model loaded yet."},
}
IdQuery = Annotated[str, Query(min_length=1, max_length=256)]


def _answer(pipeline: PipelineDep, req: RecommendRequest) -> FastJSONResponse:
    loaded, body = pipeline.recommend(pipeline.recommend_query(req))
    return FastJSONResponse(body, headers={"X-Model-Version": loaded.version})


@router.get("/recommend", response_model=RecommendResponse, responses=ERRORS)
async def recommend_get(
    pipeline: PipelineDep,
    user_id: IdQuery,
    k: Annotated[int | None, Query(ge=1, description="1..max_k; omitted = default_k")] = None,
    exclude_seen: bool = True,
    exclude_item_ids: Annotated[list[IdQuery], Query(max_length=MAX_LIST_IDS)] = [],  # noqa: B006
    recent_item_ids: Annotated[list[IdQuery], Query(max_length=MAX_RECENT_ITEMS)] = [],  # noqa: B006
    diversity: Annotated[float, Query(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.0,
    explain: bool = False,
) -> FastJSONResponse:
    """Top-k items for ``user_id``, best first (retrieval → ranking → selection).

    The simple options as query parameters (lists repeat the parameter:
    ``exclude_item_ids=i1&exclude_item_ids=i2``); ``item_filter`` needs the POST form.
    """
    req = RecommendRequest.model_construct(
        user_id=user_id,
        k=k,
        exclude_seen=exclude_seen,
        exclude_item_ids=exclude_item_ids,
        recent_item_ids=recent_item_ids,
        item_filter=None,
        diversity=diversity,
        explain=explain,
    )
    return _answer(pipeline, req)


@router.post("/recommend", response_model=RecommendResponse, responses=ERRORS)
async def recommend_post(pipeline: PipelineDep, req: RecommendRequest) -> FastJSONResponse:
    """Same as GET, with every option (including ``item_filter``) in a JSON body."""
    return _answer(pipeline, req)


@router.post("/recommend/batch", response_model=BatchRecommendResponse, responses=ERRORS)
async def recommend_batch(pipeline: PipelineDep, req: BatchRecommendRequest) -> FastJSONResponse:
    """Up to ``max_batch_size`` users with shared options, answered in one vectorised pass.

    Unknown users get the cold-start fallback (``strategy: popularity``).
    """
    loaded, body = pipeline.recommend_batch(pipeline.batch_query(req))
    return FastJSONResponse(body, headers={"X-Model-Version": loaded.version})
