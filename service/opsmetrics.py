"""Gauges read when Prometheus scrapes, for the alerts in ``docker/prometheus/rules/``.

The model's age, whether a model is loaded or refused and the Redis circuit breaker's state are
facts that change between requests, or without any request at all (a model ages while idle), so
they are computed from a callback at scrape time instead of being set on events: a stale value is
impossible. A callback that returns None exposes the family with no sample (no model, no Redis),
so an alert on it stays quiet rather than comparing against a made-up 0.

The breaker is read through :func:`breaker_of`, duck-typed on ``cache.backend.breaker.state``, so
moving the cache code to another module changes one import in ``service/app.py`` and nothing here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from importlib import metadata
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("recserve.metrics")

# The breaker's states as numbers (Grafana maps them back to words; alerts compare with 2).
BREAKER_STATES = {"closed": 0.0, "half-open": 1.0, "open": 2.0}


class CallbackGauge(Collector):
    """A label-less gauge whose value comes from a callback when the registry is collected.

    Unlike ``Gauge.set_function`` it can have no sample (the callback returns None) and it
    survives a failing callback: the error is logged and the sample left out, so one broken
    reading can never make the whole ``/metrics`` answer a 500.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self._callback: Callable[[], float | None] | None = None
        registry.register(self)

    def set_callback(self, callback: Callable[[], float | None] | None) -> None:
        self._callback = callback

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation)
        value = None
        if self._callback is not None:
            try:
                value = self._callback()
            except Exception:  # a scrape must not fail because one reading did
                log.exception("reading %s failed", self.name)
        if value is not None:
            family.add_metric([], float(value))
        yield family


class _HasState(Protocol):
    @property
    def state(self) -> str: ...


def breaker_of(cache: Any) -> _HasState | None:
    """The Redis circuit breaker behind a list cache, or None (in-process LRU, no cache)."""
    return getattr(getattr(cache, "backend", None), "breaker", None)


def breaker_state_reader(breaker: _HasState) -> Callable[[], float]:
    """Callback for ``recserve_redis_breaker_state``: 0 closed, 1 half-open, 2 open."""
    return lambda: BREAKER_STATES[breaker.state]


def seconds_since(iso_timestamp: object, now: float | None = None) -> float | None:
    """Seconds from an ISO-8601 timestamp with a zone (a manifest's ``created_at``) to ``now``.

    None when the value is missing or unreadable: an old bundle without ``created_at`` has no age
    rather than an absurd one.
    """
    if not isinstance(iso_timestamp, str):
        return None
    try:
        created = datetime.fromisoformat(iso_timestamp)
    except ValueError:
        return None
    if created.tzinfo is None:  # a naive time would be read in the scraper's zone: refuse to guess
        return None
    return (time.time() if now is None else now) - created.timestamp()


def build_labels(revision: str | None) -> dict[str, str]:
    """Labels of ``recserve_build_info``: package version and the VCS revision the image was built
    from (``RECSERVE_BUILD_REVISION``), so a dashboard can tell which build each replica runs."""
    try:
        version = metadata.version("recserve")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"version": version, "revision": revision or "unknown"}


def start_metrics_server(registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """``/metrics`` on its own port (``RECSERVE_METRICS_PORT``), in a daemon thread.

    For deployments that keep metrics off the network clients reach (a port the ingress does not
    route, a NetworkPolicy). One process per container, as deployed: a second worker process
    would find the port taken. Stop it with ``shutdown()`` then ``server_close()``.
    """
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise OSError(f"RECSERVE_METRICS_PORT {port}: cannot listen on {host}: {exc}") from exc
    return server


def watch_state(metrics: Any, holder: Any, cache: Any, settings: Any) -> None:
    """Register the scrape-time readings of one app: its model holder, its cache's breaker (when
    the cache has one) and the settings the alerts compare with."""
    metrics.model_loaded.set_callback(lambda: float(holder.current is not None))
    metrics.model_refused.set_callback(lambda: float(holder.refused_version is not None))
    metrics.model_age.set_callback(holder.model_age_seconds)
    metrics.model_max_age.set(settings.model_max_age_s)
    metrics.build_info.info(build_labels(settings.build_revision))
    breaker = breaker_of(cache)
    metrics.breaker_state.set_callback(breaker_state_reader(breaker) if breaker is not None else None)
