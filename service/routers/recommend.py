"""``/recommend``: top-k items for a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import PipelineDep
from service.responses import FastJSONResponse
from service.schemas import ErrorResponse, RecommendRequest, RecommendResponse

router = APIRouter(tags=["recommend"])
ERRORS = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


def _answer(pipeline: PipelineDep, req: RecommendRequest) -> FastJSONResponse:
    loaded, body = pipeline.recommend(req.user_id, req.k, req.exclude_seen)
    return FastJSONResponse(body, headers={"X-Model-Version": loaded.version})


@router.get("/recommend", response_model=RecommendResponse, responses=ERRORS)
async def recommend_get(
    pipeline: PipelineDep,
    user_id: Annotated[str, Query(min_length=1, max_length=256)],
    k: Annotated[int, Query(ge=1)] = 10,
    exclude_seen: bool = True,
) -> FastJSONResponse:
    """Top-k items for ``user_id``, best first (retrieval → ranking → selection)."""
    return _answer(pipeline, RecommendRequest(user_id=user_id, k=k, exclude_seen=exclude_seen))


@router.post("/recommend", response_model=RecommendResponse, responses=ERRORS)
async def recommend_post(pipeline: PipelineDep, req: RecommendRequest) -> FastJSONResponse:
    """Same as GET, with the options in a JSON body."""
    return _answer(pipeline, req)
