"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import PlainTextResponse, Response

from service.deps import HolderDep, MetricsDep
from service.responses import FastJSONResponse

router = APIRouter(tags=["operations"])
# Its own router so the app can put it behind RECSERVE_METRICS_KEY or move it to RECSERVE_METRICS_PORT.
metrics_router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> FastJSONResponse:
    """The process is alive (says nothing about the model)."""
    return FastJSONResponse({"status": "ok"})


@router.get("/readyz", responses={503: {"description": "No model loaded yet."}})
async def readyz(holder: HolderDep) -> FastJSONResponse:
    """200 once a model is loaded; details include the last refused bundle and why, if any."""
    body = holder.status()
    return FastJSONResponse(body, status_code=200 if body["ready"] else 503)


@metrics_router.get("/metrics", response_class=PlainTextResponse)
async def metrics(m: MetricsDep) -> Response:
    """Prometheus text exposition format."""
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
