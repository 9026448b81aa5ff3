"""``/dashboard``: a static page (HTML + JS + CSS shipped in the package) over small JSON endpoints.

Two routers, so access control can differ:

* ``page_router``: ``GET /dashboard`` and its two static files. They hold no data (the same bytes
  for everyone), and a browser cannot attach an ``X-API-Key`` header to a page navigation, so
  the shell stays loadable; the page asks for a key when the data endpoints answer 401.
* ``router``: ``GET /dashboard/api/...``, everything the page shows. Put it behind API keys with
  one router-level dependency where ``service/app.py`` includes it, e.g.
  ``app.include_router(dashboard.router, dependencies=[Depends(require_api_key)])``; the page sends
  the key it was given as ``X-API-Key`` on every call (these and ``/recommend``/``/similar-items``).

Both are mounted only when ``RECSERVE_DASHBOARD`` is true (the default). The data endpoints are
left out of the OpenAPI schema: they are the page's own contract, not the public API.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from service.dashboard.feedback_view import DEFAULT_HOURS, MAX_HOURS, feedback_view
from service.dashboard.live import LiveSampler
from service.dashboard.model_view import ManifestCache, model_view
from service.dashboard.tryit import examples, history, items_info
from service.deps import HolderDep, SettingsDep
from service.errors import APIError
from service.parsing import IdQuery
from service.responses import FastJSONResponse
from service.state import LoadedModel, ModelHolder

# The page loads nothing from anywhere else; the policy makes the browser refuse it if it tried.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "feedback.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
NO_CACHE = {"Cache-Control": "no-cache"}
MAX_ITEM_IDS = 500

page_router = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/dashboard/api", tags=["dashboard"], include_in_schema=False)


@cache
def _static(name: str) -> bytes:
    return (resources.files("service.dashboard") / "static" / name).read_bytes()


@page_router.get("/dashboard")
async def page() -> Response:
    """The dashboard page (the sections fill themselves from ``/dashboard/api/*``)."""
    headers = {**NO_CACHE, "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
    return Response(_static("index.html"), media_type="text/html; charset=utf-8", headers=headers)


@page_router.get("/dashboard/static/dashboard.js")
async def script() -> Response:
    return Response(_static("dashboard.js"), media_type=STATIC["dashboard.js"], headers=NO_CACHE)


@page_router.get("/dashboard/static/feedback.js")
async def feedback_script() -> Response:
    return Response(_static("feedback.js"), media_type=STATIC["feedback.js"], headers=NO_CACHE)


@page_router.get("/dashboard/static/dashboard.css")
async def stylesheet() -> Response:
    return Response(_static("dashboard.css"), media_type=STATIC["dashboard.css"], headers=NO_CACHE)


@dataclass
class DashboardState:
    """Per-app state of the page: the live ring buffer and the manifest cache."""

    live: LiveSampler
    manifests: ManifestCache = field(default_factory=ManifestCache)


async def _state(request: Request) -> DashboardState:
    """Created on first use and kept on ``app.state`` (handlers run on the event loop thread, so
    two first requests cannot race here), so wiring the dashboard into an app is one include."""
    state = getattr(request.app.state, "dashboard", None)
    if state is None:
        state = request.app.state.dashboard = DashboardState(LiveSampler(request.app.state.metrics))
    return state


StateDep = Annotated[DashboardState, Depends(_state)]


def _loaded(holder: ModelHolder) -> LoadedModel:
    current = holder.current
    if current is None:
        raise APIError(503, "no_model", "no model is loaded yet; see /readyz")
    return current


@router.get("/model")
async def model(holder: HolderDep, state: StateDep) -> FastJSONResponse:
    """The serving model, ``/readyz``'s status and the store's versions (CURRENT and previous marked)."""
    body: dict[str, Any] = await asyncio.to_thread(model_view, holder, state.manifests)
    return FastJSONResponse(body, headers=NO_CACHE)


@router.get("/live")
async def live(state: StateDep) -> FastJSONResponse:
    """Request rate, p50/p99, error and cache-hit ratios over the last 30 s, and the plot's series."""
    return FastJSONResponse(state.live.poll(), headers=NO_CACHE)


@router.get("/examples")
async def example_ids(holder: HolderDep) -> FastJSONResponse:
    """A few user and item ids of the serving model, and its filterable attribute values."""
    return FastJSONResponse(examples(_loaded(holder).model))


@router.get("/history")
async def user_history(
    request: Request,
    holder: HolderDep,
    user_id: IdQuery,
    limit: Annotated[int, Query(ge=1, le=1000, description="most items listed")] = 100,
) -> FastJSONResponse:
    """The user's training items and their feedback since training (both are what
    ``exclude_seen`` removes); ``known: false`` if the model has never seen the user."""
    loaded = _loaded(holder)
    store = request.app.state.serving.fresh  # Redis or in-process: a short, never-failing read
    fresh = await asyncio.to_thread(store.get, user_id) if store is not None else []
    return FastJSONResponse(history(loaded.model, user_id, limit, fresh, loaded.events_watermark))


@router.get("/items")
async def items(
    holder: HolderDep,
    item_id: Annotated[list[IdQuery], Query(min_length=1, max_length=MAX_ITEM_IDS)],
) -> FastJSONResponse:
    """Attributes and training popularity of up to 500 items (repeat ``item_id``)."""
    return FastJSONResponse(items_info(_loaded(holder).model, item_id))


@router.get("/feedback")
async def feedback_summary(
    request: Request,
    holder: HolderDep,
    settings: SettingsDep,
    hours: Annotated[int, Query(ge=1, le=MAX_HOURS, description="hours shown, the current one included")] = (
        DEFAULT_HOURS
    ),
) -> FastJSONResponse:
    """Events per type per hour and click-through by model version, from the event store's hourly
    rollups (every replica's events and lists). 503 ``event_store_unavailable`` naming the cause
    when the store cannot be used (not migrated: ``recserve db upgrade``)."""
    current = holder.current
    body = await asyncio.to_thread(
        feedback_view,
        request.app.state.feedback,
        request.app.state.served_lists,
        settings.feedback_types,
        current.version if current is not None else None,
        hours,
    )
    return FastJSONResponse(body, headers=NO_CACHE)
