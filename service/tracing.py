"""Request tracing with OpenTelemetry: off unless ``RECSERVE_OTEL_ENDPOINT`` is set.

When on, every request (but ``/metrics`` and the probes) is one server span, made by FastAPI's
own OpenTelemetry support (``FastAPI(telemetry=...)``: method, route, status code, and the
caller's W3C ``traceparent`` as its parent), to which :mod:`service.requestlog` adds
``recserve.request_id`` (the ``X-Request-ID`` answered) and ``recserve.model_version`` (the model
that answered). Under it, one span per stage the request really ran, wrapping the stage's own
code: ``fresh`` (the user's fresh events), ``cache`` (the list lookup), ``retrieval``,
``features``, ``ranking``, ``selection`` (or ``diversity``). The model stages open theirs through
:class:`recommender.types.SpannedTimings`, the stopwatch they already run, so ``recommender/``
knows nothing of OpenTelemetry.

Off, nothing of this exists: FastAPI's telemetry is switched off explicitly (no per-request check
of global providers), the stages get a plain dict, :meth:`Tracing.stage` returns a shared
``nullcontext`` and the SDK is never imported (it is the optional ``otel`` extra).

Spans leave through a ``BatchSpanProcessor`` (a background thread, a 2,048-span queue; a full
queue drops spans, never blocks a request) to the OTLP/HTTP exporter. The provider is made in
:func:`service.app.create_app`, which ``recserve serve --workers N`` runs in each worker process
(uvicorn spawns them), so each worker has its own exporter thread and ``process.pid`` resource
attribute. The standard ``OTEL_*`` variables apply: ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``/``_ARG`` (parent-based always-on by
default), ``OTEL_EXPORTER_OTLP_HEADERS`` (collector authentication), ``OTEL_BSP_*``.

The query string (user ids) is left out of the server span, as it is out of the access log.
"""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.trace import get_current_span

from service.opsmetrics import build_labels
from service.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

    from recommender.types import Timings

SERVICE_NAME = "recserve"
# Scrapes and probes every few seconds: counted in recserve_requests_total, never traced.
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
_OFF = nullcontext()
FLUSH_ON_EXIT_S = 2.0


class TracingUnavailable(RuntimeError):
    """``RECSERVE_OTEL_ENDPOINT`` is set but the OpenTelemetry SDK is not installed."""


def traces_url(endpoint: str) -> str:
    """The collector's traces URL: ``endpoint`` as given if it names ``/v1/traces``, else that
    path appended (``http://collector:4318`` is what a collector's OTLP/HTTP receiver listens on)."""
    if urlsplit(endpoint).path.rstrip("/").endswith("/v1/traces"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def _untraced(scope: Any) -> bool:
    return scope.get("path") in UNTRACED_PATHS


class Tracing:
    """The service's tracing switch: a tracer provider, or ``None`` for off."""

    def __init__(self, provider: TracerProvider | None = None, exporter: SpanExporter | None = None) -> None:
        self.provider = provider
        self.exporter = exporter
        self.enabled = provider is not None
        self._tracer: Tracer | None = None
        if provider is not None:
            # here, not at the top: `recserve serve --workers N` checks the setting in a
            # supervisor that never imports the model packages (nor torch)
            from recommender.types import SpannedTimings

            self._spanned = SpannedTimings
            self._tracer = provider.get_tracer(SERVICE_NAME)

    def stage(self, name: str) -> AbstractContextManager[Any]:
        """A span around one stage of the current request; the shared no-op context when off, or
        when the request's span is not recorded (sampled out: its stages would be dropped too,
        and the SDK's work per span is what tracing costs; docs/operations.md, "What it costs")."""
        if self._tracer is None or not get_current_span().is_recording():
            return _OFF
        return self._tracer.start_as_current_span(name)

    def timings(self) -> Timings:
        """The per-request stage stopwatch: a plain dict when off (or the request sampled out);
        else one that also opens a span per stage (:class:`~recommender.types.SpannedTimings`)."""
        if self._tracer is None or not get_current_span().is_recording():
            return {}
        return self._spanned(self.stage)

    def fastapi_telemetry(self) -> dict[str, Any]:
        """``FastAPI(telemetry=...)``: the server span per request with our provider, or nothing.

        FastAPI's metrics and logs stay off (``/metrics`` is Prometheus; logs are JSON lines with
        the request id), and so do its per-dependency "operation" spans: the tree is the request
        and its stages, the same few spans for every request.
        """
        off = {"metrics": False, "logs": False, "auto_configure": False, "operation_spans": False}
        if self.provider is None:
            return {**off, "tracing": False}
        return {**off, "tracing": True, "tracer_provider": self.provider, "exclude": _untraced}

    def force_flush(self, timeout_ms: int = 5_000) -> bool:
        return self.provider.force_flush(timeout_ms) if self.provider is not None else True

    def shutdown(self) -> None:
        """Export what is queued and stop the exporter thread (the app's lifespan ends).

        The last spans get :data:`FLUSH_ON_EXIT_S`: a reachable collector takes them in
        milliseconds. An unreachable one would hold the exit for the exporter's retries (measured:
        6.4 s with a refusing port; the SDK's shutdown and force_flush do not bound it), so after
        that time the exporter is stopped, which ends its retries, and what it could not send is
        dropped.
        """
        if self.provider is None:
            return
        stop_retrying = threading.Timer(FLUSH_ON_EXIT_S, self.exporter.shutdown) if self.exporter else None
        if stop_retrying is not None:
            stop_retrying.daemon = True
            stop_retrying.start()
        try:
            self.provider.shutdown()
        finally:
            if stop_retrying is not None:
                stop_retrying.cancel()


def _sdk() -> tuple[Any, ...]:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            "RECSERVE_OTEL_ENDPOINT is set but the OpenTelemetry SDK is not installed: "
            "pip install 'recserve[otel]'"
        ) from exc
    return OTLPSpanExporter, Resource, SpanProcessor, TracerProvider, BatchSpanProcessor


def check_tracing(settings: Settings) -> None:
    """Raise :class:`TracingUnavailable` now (the CLI names it) rather than in a worker."""
    if settings.otel_endpoint:
        _sdk()


def build_tracing(settings: Settings, exporter: SpanExporter | None = None) -> Tracing:
    """Tracing as the settings ask: off without ``otel_endpoint``; else a provider exporting to
    it by OTLP/HTTP (or to ``exporter``: tests pass an in-memory one)."""
    if not settings.otel_endpoint:
        return Tracing(None)
    otlp_exporter, resource, span_processor, tracer_provider, batch_processor = _sdk()

    class DropQueryString(span_processor):  # type: ignore[misc, valid-type]
        """FastAPI puts the query string (user ids) in ``url.query``; blank it at span start."""

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if span.attributes and "url.query" in span.attributes:
                span.set_attribute("url.query", "")

    build = build_labels(settings.build_revision)
    attributes = {"service.version": build["version"], "process.pid": os.getpid()}
    if "OTEL_SERVICE_NAME" not in os.environ:
        attributes["service.name"] = SERVICE_NAME
    provider = tracer_provider(resource=resource.create(attributes))
    provider.add_span_processor(DropQueryString())
    if exporter is None:
        exporter = otlp_exporter(endpoint=traces_url(settings.otel_endpoint))
    provider.add_span_processor(batch_processor(exporter))
    return Tracing(provider, exporter)
