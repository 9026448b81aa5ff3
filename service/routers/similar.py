"""``/similar-items``: items whose embeddings are nearest to an item's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import PipelineDep
from service.responses import FastJSONResponse
from service.schemas import MAX_LIST_IDS, ErrorResponse, SimilarRequest, SimilarResponse

router = APIRouter(tags=["similar-items"])
ERRORS = {
    400: {"model": ErrorResponse, "description": "Body that cannot be decoded (e.g. not UTF-8)."},
    404: {"model": ErrorResponse, "description": "Unknown item_id."},
    413: {"model": ErrorResponse, "description": "Request body larger than max_body_bytes."},
    422: {"model": ErrorResponse, "description": "Invalid option; `field` names it."},
    503: {"model": ErrorResponse, "description": "No model loaded yet."},
}
IdQuery = Annotated[str, Query(min_length=1, max_length=256)]


def _answer(pipeline: PipelineDep, req: SimilarRequest) -> FastJSONResponse:
    loaded, body = pipeline.similar(pipeline.similar_query(req))
    return FastJSONResponse(body, headers={"X-Model-Version": loaded.version})


@router.get("/similar-items", response_model=SimilarResponse, responses=ERRORS)
async def similar_get(
    pipeline: PipelineDep,
    item_id: IdQuery,
    k: Annotated[int | None, Query(ge=1, description="1..max_k; omitted = default_k")] = None,
    exclude_item_ids: Annotated[list[IdQuery], Query(max_length=MAX_LIST_IDS)] = [],  # noqa: B006
) -> FastJSONResponse:
    """The k items most similar to ``item_id`` (the item itself excluded)."""
    req = SimilarRequest.model_construct(
        item_id=item_id, k=k, exclude_item_ids=exclude_item_ids, item_filter=None
    )
    return _answer(pipeline, req)


@router.post("/similar-items", response_model=SimilarResponse, responses=ERRORS)
async def similar_post(pipeline: PipelineDep, req: SimilarRequest) -> FastJSONResponse:
    """Same as GET, with ``item_filter`` available."""
    return _answer(pipeline, req)
