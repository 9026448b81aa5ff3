"""``/similar-items``: items whose embeddings are nearest to an item's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import PipelineDep
from service.responses import FastJSONResponse
from service.schemas import ErrorResponse, SimilarRequest, SimilarResponse

router = APIRouter(tags=["similar-items"])
ERRORS = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


def _answer(pipeline: PipelineDep, req: SimilarRequest) -> FastJSONResponse:
    loaded, body = pipeline.similar(req.item_id, req.k)
    return FastJSONResponse(body, headers={"X-Model-Version": loaded.version})


@router.get("/similar-items", response_model=SimilarResponse, responses=ERRORS)
async def similar_get(
    pipeline: PipelineDep,
    item_id: Annotated[str, Query(min_length=1, max_length=256)],
    k: Annotated[int, Query(ge=1)] = 10,
) -> FastJSONResponse:
    """The k items most similar to ``item_id`` (the item itself excluded)."""
    return _answer(pipeline, SimilarRequest(item_id=item_id, k=k))


@router.post("/similar-items", response_model=SimilarResponse, responses=ERRORS)
async def similar_post(pipeline: PipelineDep, req: SimilarRequest) -> FastJSONResponse:
    return _answer(pipeline, req)
