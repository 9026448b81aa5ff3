"""Request parsing as FastAPI dependencies: query strings and JSON bodies → domain queries.

In the style of the full-stack FastAPI template, a router declares what it needs as an
``Annotated`` alias (``query: RecommendPost``) and receives a finished
:class:`~service.queries.RecommendQuery`: defaults applied, ``k`` resolved against
``default_k``/``max_k``, the filter built. Limits that depend on configuration raise domain
errors (:class:`~service.exceptions.KTooLarge`, :class:`~service.exceptions.BatchTooLarge`),
which ``service/errors.py`` turns into the one 422 body.

The providers are ``async def`` (see ``service/deps.py``): a sync dependency costs a thread-pool hop.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Query

from eventstore import Event
from recommender.filters import ItemFilter
from service.deps import SettingsDep
from service.exceptions import BatchTooLarge, KTooLarge, UnknownEventType
from service.feedback import FeedbackCommand
from service.limits import MAX_QUERY_IDS
from service.queries import BatchQuery, RecommendQuery, SimilarQuery
from service.schemas import (
    BatchRecommendRequest,
    FeedbackBatch,
    FeedbackBody,
    FeedbackEvent,
    ItemFilterModel,
    RecommendRequest,
    SimilarRequest,
)
from service.settings import Settings

IdQuery = Annotated[str, Query(min_length=1, max_length=256)]
KQuery = Annotated[int | None, Query(ge=1, description="1..max_k; omitted = default_k")]
IdsQuery = Annotated[
    list[IdQuery],
    Query(
        max_length=MAX_QUERY_IDS,
        description=f"At most {MAX_QUERY_IDS} in a query string (longer lists: the POST form).",
    ),
]
DiversityQuery = Annotated[float, Query(ge=0.0, le=1.0, allow_inf_nan=False)]


def resolve_k(k: int | None, settings: Settings) -> int:
    """``k`` as asked, or ``default_k`` (never above ``max_k``) when omitted."""
    if k is None:
        return min(settings.default_k, settings.max_k)
    if k > settings.max_k:
        raise KTooLarge(k, settings.max_k)
    return k


def to_filter(model: ItemFilterModel | None) -> ItemFilter | None:
    """The domain filter; an empty one (``{}`` or ``{"include": {}}``) is no filter."""
    if model is None or not (model.include or model.exclude):
        return None
    return ItemFilter(include=dict(model.include), exclude=dict(model.exclude))


async def recommend_from_query(
    settings: SettingsDep,
    user_id: IdQuery,
    k: KQuery = None,
    exclude_seen: bool = True,
    exclude_item_ids: IdsQuery = [],  # noqa: B006  (FastAPI copies defaults per request)
    recent_item_ids: IdsQuery = [],  # noqa: B006
    diversity: DiversityQuery = 0.0,
    explain: bool = False,
) -> RecommendQuery:
    return RecommendQuery(
        user_id=user_id,
        k=resolve_k(k, settings),
        exclude_seen=exclude_seen,
        exclude_item_ids=tuple(exclude_item_ids),
        recent_item_ids=tuple(recent_item_ids),
        diversity=diversity,
        explain=explain,
    )


async def recommend_from_body(settings: SettingsDep, req: RecommendRequest) -> RecommendQuery:
    return RecommendQuery(
        user_id=req.user_id,
        k=resolve_k(req.k, settings),
        exclude_seen=req.exclude_seen,
        exclude_item_ids=tuple(req.exclude_item_ids),
        item_filter=to_filter(req.item_filter),
        recent_item_ids=tuple(req.recent_item_ids),
        diversity=req.diversity,
        explain=req.explain,
    )


async def batch_from_body(settings: SettingsDep, req: BatchRecommendRequest) -> BatchQuery:
    if len(req.user_ids) > settings.max_batch_size:
        raise BatchTooLarge(len(req.user_ids), settings.max_batch_size)
    return BatchQuery(
        user_ids=tuple(req.user_ids),
        k=resolve_k(req.k, settings),
        exclude_seen=req.exclude_seen,
        exclude_item_ids=tuple(req.exclude_item_ids),
        item_filter=to_filter(req.item_filter),
        diversity=req.diversity,
        explain=req.explain,
    )


async def similar_from_query(
    settings: SettingsDep,
    item_id: IdQuery,
    k: KQuery = None,
    exclude_item_ids: IdsQuery = [],  # noqa: B006
) -> SimilarQuery:
    return SimilarQuery(item_id=item_id, k=resolve_k(k, settings), exclude_item_ids=tuple(exclude_item_ids))


async def similar_from_body(settings: SettingsDep, req: SimilarRequest) -> SimilarQuery:
    return SimilarQuery(
        item_id=req.item_id,
        k=resolve_k(req.k, settings),
        exclude_item_ids=tuple(req.exclude_item_ids),
        item_filter=to_filter(req.item_filter),
    )


async def feedback_from_body(settings: SettingsDep, req: FeedbackBody) -> FeedbackCommand:
    """One event or a batch, as events; a batch over ``feedback_max_batch`` or an event of an
    unknown type refuses the request whole, naming the field (``events.3.type``)."""
    single = isinstance(req, FeedbackEvent)
    given = [req] if single else req.events
    if isinstance(req, FeedbackBatch) and len(given) > settings.feedback_max_batch:
        raise BatchTooLarge(len(given), settings.feedback_max_batch, "events", "events", "feedback_max_batch")
    now = time.time()
    events = []
    for i, e in enumerate(given):
        if e.type not in settings.feedback_types:
            raise UnknownEventType(e.type, settings.feedback_types, "type" if single else f"events.{i}.type")
        timestamp = now if e.timestamp is None else e.timestamp
        events.append(Event(e.user_id, e.item_id, e.type, timestamp, e.event_id, e.recomm_id, e.weight))
    return FeedbackCommand(tuple(events))


RecommendGet = Annotated[RecommendQuery, Depends(recommend_from_query)]
RecommendPost = Annotated[RecommendQuery, Depends(recommend_from_body)]
BatchPost = Annotated[BatchQuery, Depends(batch_from_body)]
SimilarGet = Annotated[SimilarQuery, Depends(similar_from_query)]
SimilarPost = Annotated[SimilarQuery, Depends(similar_from_body)]
FeedbackPost = Annotated[FeedbackCommand, Depends(feedback_from_body)]
