"""Prometheus metrics of one app instance (own registry: no import-time global state).

Deployment runs ONE uvicorn process per container and scales by replicas (docs/deploy.md), so the
registry of this process is the whole truth for its ``/metrics``. prometheus-client's multiprocess
mode is deliberately not used: with ``serve --workers N`` each scrape would see one random worker.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from service.opsmetrics import CallbackGauge

# Millisecond-scale answers: fine buckets from 0.5 ms to 1 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    """All service metrics. Names are part of the deployment contract (Grafana queries them)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "recserve_requests_total",
            "HTTP requests by endpoint, method and status.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        # status is a label so that fast 404s for unknown ids cannot pull the p99 of answers down.
        self.latency = Histogram(
            "recserve_request_latency_seconds",
            "HTTP request latency by endpoint, method and status.",
            ["endpoint", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_latency = Histogram(
            "recserve_stage_latency_seconds",
            "Latency of one pipeline stage inside a request.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "recserve_cache_requests_total",
            "Precomputed-list lookups by endpoint and result (hit/miss).",
            ["endpoint", "result"],
            registry=r,
        )
        self.candidates = Histogram(
            "recserve_candidates",
            "Retrieval candidates scored per request.",
            buckets=(10, 25, 50, 100, 200, 300, 500, 1000, 2000),
            registry=r,
        )
        self.model_info = Gauge(
            "recserve_model_info",
            "The model version being served (value 1).",
            ["version"],
            registry=r,
        )
        self.model_load_failures = Counter(
            "recserve_model_load_failures_total",
            "Bundles refused at load, by reason.",
            ["reason"],
            registry=r,
        )
        self.model_swaps = Counter(
            "recserve_model_swaps_total",
            "Models swapped in (startup load included).",
            registry=r,
        )
        self.model_swap_seconds = Histogram(
            "recserve_model_swap_seconds",
            "Time to load, verify and warm a new model before swapping it in.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.redis_errors = Counter(
            "recserve_redis_errors_total",
            "Redis operations that failed, by operation.",
            ["op"],
            registry=r,
        )
        # Read at scrape time through callbacks the app registers (service/opsmetrics.py); the
        # alerts of docker/prometheus/rules/ use them.
        self.model_loaded = CallbackGauge("recserve_model_loaded", "1 while a model is being served.", r)
        self.model_refused = CallbackGauge(
            "recserve_model_refused", "1 while the store's CURRENT is a bundle this process refused.", r
        )
        self.model_age = CallbackGauge(
            "recserve_model_age_seconds", "Seconds since the serving bundle's created_at.", r
        )
        self.model_max_age = Gauge(
            "recserve_model_max_age_seconds",
            "RECSERVE_MODEL_MAX_AGE_S: the age above which the model counts as stale (0 = no limit).",
            registry=r,
        )
        self.breaker_state = CallbackGauge(
            "recserve_redis_breaker_state",
            "Redis circuit breaker: 0 closed, 1 half-open, 2 open (no sample without Redis).",
            r,
        )
        self.build_info = Info("recserve_build", "Version and VCS revision of this build.", registry=r)
        # -- the feedback loop: CTR per model version is
        #    sum by (version) (rate(recserve_feedback_credited_total{type="click"}[1h]))
        #    / sum by (version) (rate(recserve_lists_served_total[1h]))
        self.lists_served = Counter(
            "recserve_lists_served_total",
            "Lists answered (each with a recomm_id), by model version and strategy.",
            ["version", "strategy"],
            registry=r,
        )
        self.feedback_events = Counter(
            "recserve_feedback_events_total",
            "Feedback events by type and result: accepted (stored) or duplicate (event_id seen before).",
            ["type", "result"],
            registry=r,
        )
        self.feedback_rejected = Counter(
            "recserve_feedback_rejected_total",
            "POST /feedback requests refused, nothing stored: invalid (4xx) or storage (503).",
            ["reason"],
            registry=r,
        )
        self.feedback_unknown = Counter(
            "recserve_feedback_unknown_total",
            "Accepted events whose user or item the serving model does not know, by kind.",
            ["kind"],
            registry=r,
        )
        self.feedback_credited = Counter(
            "recserve_feedback_credited_total",
            "Accepted events carrying a recomm_id, by the served list's model version, strategy and "
            "event type (version 'other': a list this process did not serve).",
            ["version", "strategy", "type"],
            registry=r,
        )
        self.feedback_commit_seconds = Histogram(
            "recserve_feedback_commit_seconds",
            "Time to store one POST /feedback batch durably (the 202 waits for it).",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
            registry=r,
        )
        # process_* (CPU, RSS, open fds) and python_info, in this registry rather than the global one.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    def observe_stages(self, timings: dict[str, float]) -> None:
        for stage, seconds in timings.items():
            self.stage_latency.labels(stage).observe(seconds)

    def backend_error(self, op: str) -> None:
        """A failed list-cache operation (the ``listcache.CacheObserver`` protocol)."""
        self.redis_errors.labels(op).inc()

    def set_model(self, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version).set(1)


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]
]


class MetricsMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware overhead) timing every HTTP request.

    The endpoint label is the matched route's path template, so ``/recommend?user_id=…`` and
    unknown paths do not explode label cardinality (unmatched paths are labelled ``other``).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "other"
            method = scope.get("method", "GET")
            labels = (endpoint, method, str(status))
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)
            self.metrics.requests.labels(*labels).inc()
