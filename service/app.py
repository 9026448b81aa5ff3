"""App factory: everything is built here and in the lifespan, nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import torch
from fastapi import FastAPI

from service.auth import KeyRing, metrics_dependencies, protected_by
from service.errors import install_error_handlers
from service.feedback import Feedback
from service.fresh import build_fresh_store
from service.impressions import ServedLists
from service.limits import BodySizeLimitMiddleware, apply_limits_to_openapi
from service.lists import CachedLists, build_list_cache
from service.metrics import Metrics, MetricsMiddleware
from service.opsmetrics import start_metrics_server, watch_state
from service.requestlog import RequestContextMiddleware
from service.routers import admin, bench, dashboard, feedback, health, recommend, similar
from service.settings import Settings
from service.state import ModelHolder
from service.strategies import Serving, filter_attributes
from service.tracing import build_tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("recserve")


async def poll_store(holder: ModelHolder, interval: float) -> None:
    """Check the store's CURRENT every ``interval`` seconds; load, verify and warm a new model in
    a worker thread so requests keep being answered by the current one meanwhile."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(holder.load_current)
        except Exception:  # the poller must outlive any store hiccup
            log.exception("store poll failed")


def create_app(settings: Settings | None = None, span_exporter: SpanExporter | None = None) -> FastAPI:
    """Build a service instance. Each call has its own settings, metrics registry and model.

    With ``RECSERVE_OTEL_ENDPOINT`` set, its own tracer provider too (``recserve serve --workers N``
    calls this in each worker process, so each has its exporter thread); ``span_exporter``
    replaces the OTLP exporter (tests: an in-memory one).
    """
    settings = settings or Settings()
    metrics = Metrics()
    tracing = build_tracing(settings, span_exporter)
    holder = ModelHolder(
        settings.store_uri,
        metrics,
        n_candidates=settings.n_candidates,
        warmup_queries=settings.warmup_queries,
        cache_dir=settings.store_cache_dir,
        mmap=settings.mmap_bundle,
    )
    lists = CachedLists(build_list_cache(settings, metrics), metrics, tracing)
    api_keys = KeyRing.from_settings(settings)  # an unreadable keys file stops the start here
    watch_state(metrics, holder, lists.cache, settings)  # model age/loaded/refused, breaker, build info
    fresh = build_fresh_store(settings, metrics)
    events = Feedback(settings.database_url, holder, metrics, fresh)
    served_lists = ServedLists(metrics, events.opened)  # CTR's denominator, into the event store
    serving = Serving(holder, settings, metrics, lists, fresh, tracing)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        torch.set_num_threads(settings.torch_threads)
        switch_interval = sys.getswitchinterval()
        if serving.batcher is not None:  # two busy threads: hand the GIL over sooner (performance-notes)
            sys.setswitchinterval(settings.gil_switch_interval_s)
        if holder.current is None and not holder.load_current():
            log.warning("starting without a model: %s", holder.last_error)
        poller = None
        metrics_server = None
        if settings.metrics_port is not None:
            metrics_server = start_metrics_server(metrics.registry, settings.host, settings.metrics_port)
        if settings.store_poll_interval > 0:
            poller = asyncio.create_task(poll_store(holder, settings.store_poll_interval))
        served_flusher = asyncio.create_task(served_lists.run())
        try:
            yield
        finally:
            sys.setswitchinterval(switch_interval)
            served_flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await served_flusher
            await asyncio.to_thread(served_lists.flush_quietly)
            serving.close()
            lists.close()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            fresh.close()
            events.close()
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            metrics.process_exit()
            tracing.shutdown()  # exports what is queued

    app = FastAPI(
        title="recserve",
        version="0.1.0",
        summary="Top-K recommendations and similar items in a few milliseconds.",
        lifespan=lifespan,
        telemetry=tracing.fastapi_telemetry(),  # type: ignore[arg-type]
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.holder = holder
    app.state.cache = lists.cache
    app.state.api_keys = api_keys
    app.state.tracing = tracing
    app.state.serving = serving
    app.state.feedback = events
    app.state.served_lists = served_lists
    install_error_handlers(app)
    # Every list and feedback endpoint behind the API keys when they are configured; probes stay open.
    app.include_router(recommend.router, **protected_by(api_keys))
    app.include_router(similar.router, **protected_by(api_keys))
    app.include_router(feedback.router, **protected_by(api_keys))
    app.include_router(health.router)
    if settings.metrics_port is None:  # else served on its own port by the lifespan
        app.include_router(health.metrics_router, dependencies=metrics_dependencies(settings))
    if settings.bench_endpoints:
        app.include_router(bench.router)
    if settings.dashboard:
        app.include_router(dashboard.page_router)
        app.include_router(dashboard.router, **protected_by(api_keys))  # its data: behind the keys
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        app.include_router(admin.router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(  # outermost: the request id covers everything below, 500s included
        RequestContextMiddleware,
        access_log_enabled=settings.access_log,
        sample_rate=settings.access_log_sample_rate,
        tracing=tracing.enabled,
    )

    def served_attributes() -> list[str] | None:
        current = holder.current
        return filter_attributes(current.model) if current is not None else None

    apply_limits_to_openapi(app, settings, served_attributes)
    return app
