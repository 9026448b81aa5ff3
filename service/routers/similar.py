"""``/similar-items``: items whose embeddings are nearest to an item's."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service import presenter
from service.deps import ServingDep
from service.fastget import FastGetRoute, fast_parser, similar_query
from service.parsing import SimilarGet, SimilarPost
from service.queries import SimilarQuery
from service.responses import FastJSONResponse
from service.routers.common import error_responses
from service.schemas import SimilarResponse

router = APIRouter(tags=["similar-items"], route_class=FastGetRoute)
ERRORS = error_responses("Unknown item_id.")


async def _answer(serving: ServingDep, query: SimilarQuery) -> FastJSONResponse:
    loaded, answer = await serving.similar_async(query)
    return presenter.respond(loaded, presenter.similar_body(loaded.model, query.item_id, answer))


async def _fast(request: Request) -> FastJSONResponse | None:
    """A plain GET without FastAPI's parameter resolution (``service/fastget.py``)."""
    query = similar_query(request)
    return None if query is None else await _answer(request.app.state.serving, query)


@router.get("/similar-items", response_model=SimilarResponse, responses=ERRORS)
@fast_parser(_fast)
async def similar_get(serving: ServingDep, query: SimilarGet) -> FastJSONResponse:
    """The k items most similar to ``item_id`` (the item itself excluded)."""
    return await _answer(serving, query)


@router.post("/similar-items", response_model=SimilarResponse, responses=ERRORS)
async def similar_post(serving: ServingDep, query: SimilarPost) -> FastJSONResponse:
    """Same as GET, with ``item_filter`` available."""
    return await _answer(serving, query)
