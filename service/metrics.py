"""Prometheus metrics of one app instance (own registry: no import-time global state).

One process (``recserve serve``, the default): the registry of this process is the whole truth for
its ``/metrics``. Several workers (``recserve serve --workers N``): each scrape reaches one random
worker, so the counters, histograms and gauges are kept in prometheus-client's multiprocess files
(``PROMETHEUS_MULTIPROC_DIR``, set up and emptied by ``recserve serve``) and ``/metrics`` sums
them over every worker, live or exited. What only has a meaning per process (the scrape-time
callback gauges, build info, python_info) comes from the worker that answers; process_* is the
whole server's CPU and memory in that mode (``service/procmetrics.py``), not a random worker's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    multiprocess,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from service.opsmetrics import CallbackGauge
from service.procmetrics import ServerProcesses

# Millisecond-scale answers: fine buckets from 0.5 ms to 1 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus-client runs in that mode (read at its import)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Forward(Collector):
    """Collects another registry's metrics (the per-process ones, beside the multiprocess sums)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


class _WorkerSums(Collector):
    """prometheus-client's sums over every worker's files, minus retired model versions.

    A worker cannot delete a label from its file, so after a swap it sets the old version's
    ``recserve_model_info`` to 0; leaving those samples out keeps the output what one process
    would show (only versions being served, value 1), which the version-skew alert relies on.
    """

    def __init__(self, path: str) -> None:
        self.sums = multiprocess.MultiProcessCollector(None, path=path)

    def collect(self) -> Iterable[Metric]:
        for metric in self.sums.collect():
            if metric.name == "recserve_model_info":
                metric.samples = [s for s in metric.samples if s.value != 0]
            yield metric


def _remember_children(metric: Any) -> None:
    """Make ``metric.labels(*values)`` a dict lookup after the first call with those values.

    prometheus-client validates and locks on every ``labels`` call; the children of these
    metrics are never removed, so the one it returned first stays valid (keyword calls keep the
    original path)."""
    children: dict[tuple[str, ...], Any] = {}
    original = metric.labels

    def labels(*values: Any, **named: Any) -> Any:
        if named:
            return original(*values, **named)
        child = children.get(values)
        if child is None:
            child = children[values] = original(*values)
        return child

    metric.labels = labels


class Metrics:
    """All service metrics. Names are part of the deployment contract (Grafana queries them).

    ``registry`` is what ``/metrics`` renders: this process's registry, or, in multiprocess mode
    (see the module docstring), the sums over all workers plus this worker's per-process metrics.
    """

    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir if multiproc_dir is not None else multiprocess_dir()
        local = CollectorRegistry()  # per-process: callbacks, build info, platform
        if self.multiproc_dir:
            # Values live in the multiprocess files; registering them here too would report this
            # worker's share a second time.
            r: CollectorRegistry | None = None
            self.registry = CollectorRegistry()
            self.registry.register(_WorkerSums(self.multiproc_dir))
            self.registry.register(_Forward(local))
        else:
            r = local
            self.registry = local
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
        self.batch_size = Histogram(
            "recserve_batch_size",
            "Lists computed in one model call (micro-batching; 1 = alone), by endpoint kind.",
            ["kind"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.model_info = Gauge(
            "recserve_model_info",
            "The model version being served (value 1).",
            ["version"],
            registry=r,
            multiprocess_mode="livemax",  # 1 for each version a live worker serves
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
        self.model_loaded = CallbackGauge("recserve_model_loaded", "1 while a model is being served.", local)
        self.model_refused = CallbackGauge(
            "recserve_model_refused", "1 while the store's CURRENT is a bundle this process refused.", local
        )
        self.model_age = CallbackGauge(
            "recserve_model_age_seconds", "Seconds since the serving bundle's created_at.", local
        )
        self.model_max_age = Gauge(
            "recserve_model_max_age_seconds",
            "RECSERVE_MODEL_MAX_AGE_S: the age above which the model counts as stale (0 = no limit).",
            registry=r,
            multiprocess_mode="livemax",  # the same setting in every worker
        )
        self.breaker_state = CallbackGauge(
            "recserve_redis_breaker_state",
            "Redis circuit breaker: 0 closed, 1 half-open, 2 open (no sample without Redis).",
            local,
        )
        self.build_info = Info("recserve_build", "Version and VCS revision of this build.", registry=local)
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
        # process_* (CPU, RSS, open fds) and python_info, in this registry rather than the global one;
        # with several workers, CPU and memory of the whole server (service/procmetrics.py).
        if not self.multiproc_dir:
            ProcessCollector(registry=local)
        else:
            local.register(ServerProcesses())
        PlatformCollector(registry=local)
        self._versions: set[str] = set()
        for hot in (
            self.requests,
            self.latency,
            self.stage_latency,
            self.cache,
            self.batch_size,
            self.lists_served,
        ):
            _remember_children(hot)  # labelled on every request: ~3 µs a call saved

    def observe_stages(self, timings: dict[str, float]) -> None:
        for stage, seconds in timings.items():
            self.stage_latency.labels(stage).observe(seconds)

    def backend_error(self, op: str) -> None:
        """A failed list-cache operation (the ``listcache.CacheObserver`` protocol)."""
        self.redis_errors.labels(op).inc()

    def set_model(self, version: str) -> None:
        if self.multiproc_dir:
            # clear() would leave the old value in this worker's file: set it to 0 instead.
            for old in self._versions - {version}:
                self.model_info.labels(old).set(0)
            self._versions.add(version)
        else:
            self.model_info.clear()
        self.model_info.labels(version).set(1)

    def process_exit(self) -> None:
        """Drop this worker's live-gauge files (``live*`` modes) when it stops."""
        if self.multiproc_dir:
            multiprocess.mark_process_dead(os.getpid(), self.multiproc_dir)


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
