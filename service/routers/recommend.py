"""``/recommend`` and ``/recommend/batch``: top-k items for one user or many."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service import presenter
from service.deps import ServingDep
from service.fastget import FastGetRoute, fast_parser, recommend_query
from service.parsing import BatchPost, RecommendGet, RecommendPost
from service.queries import RecommendQuery
from service.responses import FastJSONResponse
from service.routers.common import error_responses
from service.schemas import BatchRecommendResponse, RecommendResponse

router = APIRouter(tags=["recommend"], route_class=FastGetRoute)
ERRORS = error_responses("Unknown user (only with cold_start_fallback=error).")


async def _answer(serving: ServingDep, query: RecommendQuery) -> FastJSONResponse:
    loaded, answer = await serving.recommend_async(query)
    return presenter.respond(
        loaded, presenter.recommend_body(loaded.model, query.user_id, answer, query.explain)
    )


async def _fast(request: Request) -> FastJSONResponse | None:
    """A plain GET without FastAPI's parameter resolution (``service/fastget.py``)."""
    query = recommend_query(request)
    return None if query is None else await _answer(request.app.state.serving, query)


@router.get("/recommend", response_model=RecommendResponse, responses=ERRORS)
@fast_parser(_fast)
async def recommend_get(serving: ServingDep, query: RecommendGet) -> FastJSONResponse:
    """Top-k items for ``user_id``, best first (retrieval → ranking → selection).

    The simple options as query parameters (lists repeat the parameter:
    ``exclude_item_ids=i1&exclude_item_ids=i2``, at most 10 each); ``item_filter`` and longer
    lists need the POST form.
    """
    return await _answer(serving, query)


@router.post("/recommend", response_model=RecommendResponse, responses=ERRORS)
async def recommend_post(serving: ServingDep, query: RecommendPost) -> FastJSONResponse:
    """Same as GET, with every option (including ``item_filter``) in a JSON body."""
    return await _answer(serving, query)


@router.post("/recommend/batch", response_model=BatchRecommendResponse, responses=ERRORS)
async def recommend_batch(serving: ServingDep, query: BatchPost) -> FastJSONResponse:
    """Up to ``max_batch_size`` users with shared options, answered in one vectorised pass.

    Unknown users get the cold-start fallback (``strategy: popularity``).
    """
    loaded, answers = serving.recommend_batch(query)
    body = presenter.batch_body(loaded.model, query.user_ids, answers, query.explain)
    return presenter.respond(loaded, body)
