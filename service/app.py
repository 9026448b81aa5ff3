"""App factory: everything is built here and in the lifespan, nothing at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI

from service.errors import install_error_handlers
from service.metrics import Metrics, MetricsMiddleware
from service.pipeline import ServingPipeline
from service.routers import bench, health, recommend, similar
from service.settings import Settings
from service.state import ModelHolder

log = logging.getLogger("recserve")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build a service instance. Each call has its own settings, metrics registry and model."""
    settings = settings or Settings()
    metrics = Metrics()
    holder = ModelHolder(settings.store_uri, metrics, n_candidates=settings.n_candidates)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        torch.set_num_threads(settings.torch_threads)
        if not holder.load_current():
            log.warning("starting without a model: %s", holder.last_error)
        yield

    app = FastAPI(
        title="recserve",
        version="0.1.0",
        summary="Top-K recommendations and similar items in a few milliseconds.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.holder = holder
    app.state.pipeline = ServingPipeline(holder, settings, metrics)
    install_error_handlers(app)
    app.include_router(recommend.router)
    app.include_router(similar.router)
    app.include_router(health.router)
    if settings.bench_endpoints:
        app.include_router(bench.router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
