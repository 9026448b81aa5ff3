"""OpenTelemetry tracing (RECSERVE_OTEL_ENDPOINT): the span tree of real requests, read back from
the SDK's in-memory exporter; nothing at all with the setting off."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy.helpers import free_port
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from model_store import LocalStore
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel
from recserve.cli import main
from service.app import create_app
from service.settings import Settings
from service.tracing import traces_url
from training.data import InteractionData

ENDPOINT = "http://127.0.0.1:4318"  # never contacted: the exporter is replaced by the in-memory one
MODEL_STAGES = ["retrieval", "features", "ranking", "selection"]


class Traced:
    def __init__(self, client: TestClient, app: FastAPI, exporter: InMemorySpanExporter) -> None:
        self.client = client
        self.app = app
        self.exporter = exporter

    def spans(self) -> list[ReadableSpan]:
        """The spans finished since the last call (flushed out of the batch processor first)."""
        assert self.app.state.tracing.force_flush()
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans


def _settings(store: Path, **overrides: object) -> Settings:
    return Settings(store_uri=str(store), store_poll_interval=0, _env_file=None, **overrides)


@pytest.fixture
def traced(published_store: Path) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    app = create_app(_settings(published_store, otel_endpoint=ENDPOINT), span_exporter=exporter)
    with TestClient(app) as client:
        yield Traced(client, app, exporter)


def _tree(spans: list[ReadableSpan]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The one server span and its children (every span of the request is one or the other)."""
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(servers) == 1, [s.name for s in spans]
    root = servers[0]
    children = [s for s in spans if s is not root]
    for child in children:
        assert child.parent is not None and child.parent.span_id == root.context.span_id, child.name
        assert child.context.trace_id == root.context.trace_id
        assert child.kind is SpanKind.INTERNAL
        # inside the request, in time
        assert root.start_time <= child.start_time <= child.end_time <= root.end_time
    return root, sorted(children, key=lambda s: s.start_time)


def _assert_request_span(root: ReadableSpan, route: str, resp: object) -> None:
    attrs = root.attributes
    assert root.name == f"GET {route}"
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.route"] == route
    assert attrs["http.response.status_code"] == resp.status_code == 200
    assert attrs["recserve.request_id"] == resp.headers["X-Request-ID"]
    assert attrs["recserve.model_version"] == resp.headers["X-Model-Version"]
    assert "url.query" not in attrs or attrs["url.query"] == ""  # user ids stay out of traces


def test_computed_then_cached_recommendation(traced: Traced, small_data: InteractionData) -> None:
    user = small_data.user_ids[3]
    assert traced.spans() == []  # loading and warming the model is no request: no span
    params = {"user_id": user, "k": 5}
    resp = traced.client.get("/recommend", params=params, headers={"X-Request-ID": "trace-1"})
    assert resp.json()["source"] == "computed"
    root, children = _tree(traced.spans())
    _assert_request_span(root, "/recommend", resp)
    assert root.attributes["recserve.request_id"] == "trace-1"
    # the user's fresh events, the list cache, then the model's stages
    assert [s.name for s in children] == ["fresh", "cache", *MODEL_STAGES]
    assert children[1].attributes["recserve.cache.result"] == "miss"
    # the stages run one after the other, each span wrapping its own piece of work
    for before, after in itertools.pairwise(children):
        assert before.end_time <= after.start_time, (before.name, after.name)

    hit = traced.client.get("/recommend", params={"user_id": user, "k": 5})
    assert hit.json()["source"] == "cache"
    root, children = _tree(traced.spans())
    _assert_request_span(root, "/recommend", hit)
    assert root.attributes["recserve.request_id"] != "trace-1"  # a new id, made by the service
    assert [s.name for s in children] == ["fresh", "cache"]
    assert children[1].attributes["recserve.cache.result"] == "hit"


def test_similar_items_span_tree(traced: Traced, small_data: InteractionData) -> None:
    resp = traced.client.get("/similar-items", params={"item_id": small_data.item_ids[5], "k": 4})
    assert resp.status_code == 200 and resp.json()["source"] == "computed"
    root, children = _tree(traced.spans())
    _assert_request_span(root, "/similar-items", resp)
    # the list is the retrieval itself: no ranker, no selection stage
    assert [s.name for s in children] == ["cache", "retrieval"]


def test_an_incoming_traceparent_is_the_parent(traced: Traced, small_data: InteractionData) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    resp = traced.client.get("/recommend", params={"user_id": small_data.user_ids[0]}, headers=headers)
    assert resp.status_code == 200
    spans = traced.spans()
    root, children = _tree(spans)
    assert f"{root.context.trace_id:032x}" == trace_id
    assert root.parent is not None and root.parent.is_remote
    assert f"{root.parent.span_id:016x}" == parent_id
    assert {s.context.trace_id for s in children} == {root.context.trace_id}


def test_a_caller_that_sampled_out_gets_no_span(traced: Traced, small_data: InteractionData) -> None:
    """Parent-based sampling (the default): a ``traceparent`` whose sampled flag is off is
    followed, for the request and its stages alike."""
    headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}
    resp = traced.client.get("/recommend", params={"user_id": small_data.user_ids[4]}, headers=headers)
    assert resp.status_code == 200 and resp.json()["source"] == "computed"
    assert traced.spans() == []


def test_errors_probes_and_scrapes(traced: Traced) -> None:
    """A 404 is a request span with its status and no stage; probes and scrapes are not traced."""
    for path in ("/healthz", "/readyz", "/metrics"):
        assert traced.client.get(path).status_code == 200
    assert traced.spans() == []
    resp = traced.client.get("/similar-items", params={"item_id": "no-such-item"})
    assert resp.status_code == 404
    root, children = _tree(traced.spans())
    assert root.attributes["http.response.status_code"] == 404
    assert root.attributes["recserve.request_id"] == resp.headers["X-Request-ID"]
    assert children == []


def test_after_a_hot_swap_the_span_names_the_model_that_answered(
    tmp_path: Path, trained: tuple[RecommenderModel, dict], small_data: InteractionData
) -> None:
    """The model version attribute is the answering model's (the one the request read once), and
    the stages of a request after the swap are traced as before it."""
    store = LocalStore(tmp_path / "store")
    first = store.publish(clone_model(trained[0], new_version_id()))
    exporter = InMemorySpanExporter()
    settings = _settings(store.root, otel_endpoint=ENDPOINT, admin_token="swap-token")
    app = create_app(settings, span_exporter=exporter)
    traced = Traced(TestClient(app), app, exporter)
    params = {"user_id": small_data.user_ids[2], "k": 3}
    with traced.client:
        before = traced.client.get("/recommend", params=params)
        second = store.publish(clone_model(trained[0], new_version_id()))
        reload = {"Authorization": "Bearer swap-token"}
        assert traced.client.post("/admin/reload", headers=reload).status_code == 200
        after = traced.client.get("/recommend", params=params)
        spans = traced.spans()
    roots = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [r.name for r in roots] == ["GET /recommend", "POST /admin/reload", "GET /recommend"]
    assert [before.headers["X-Model-Version"], after.headers["X-Model-Version"]] == [first, second]
    assert [roots[0].attributes["recserve.model_version"], roots[2].attributes["recserve.model_version"]] == [
        first,
        second,
    ]
    for root in (roots[0], roots[2]):  # a new model, a cold cache: computed, all stages again
        names = [s.name for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
        assert set(MODEL_STAGES) <= set(names)


def test_off_makes_no_span(
    published_store: Path, small_data: InteractionData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting unset: no span, even when something else in the process installed a global tracer
    provider (FastAPI's own telemetry would use it by default), and the stages get a plain dict."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    app = create_app(_settings(published_store), span_exporter=InMemorySpanExporter())
    assert not app.state.tracing.enabled
    assert type(app.state.serving.tracing.timings()) is dict
    with TestClient(app) as client:
        for _ in range(2):  # computed, then from the cache
            resp = client.get("/recommend", params={"user_id": small_data.user_ids[1]})
            assert resp.status_code == 200
        assert client.get("/similar-items", params={"item_id": small_data.item_ids[1]}).status_code == 200
    provider.force_flush()
    assert exporter.get_finished_spans() == ()


def test_the_endpoint_setting() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("https://c.example/otlp/") == "https://c.example/otlp/v1/traces"
    assert traces_url("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"
    assert Settings(otel_endpoint="", _env_file=None).otel_endpoint is None
    for bad in ("collector:4318", "grpc://collector:4317", "http://"):
        with pytest.raises(ValidationError, match="otel_endpoint"):
            Settings(otel_endpoint=bad, _env_file=None)


def test_an_unreachable_collector_costs_requests_nothing(
    published_store: Path, small_data: InteractionData, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens at the endpoint: every request is answered, and stopping the service does
    not wait out the exporter's retries (spans are dropped, never waited for)."""
    settings = _settings(published_store, otel_endpoint=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(settings)) as client:
        for user in small_data.user_ids[:20]:
            assert client.get("/recommend", params={"user_id": user}).status_code == 200
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5


def test_serve_names_the_missing_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The setting without the SDK installed: one line naming the extra, before any worker."""
    monkeypatch.setenv("RECSERVE_OTEL_ENDPOINT", ENDPOINT)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # import fails as if absent
    assert main(["serve", "--store", str(tmp_path), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "RECSERVE_OTEL_ENDPOINT is set but the OpenTelemetry SDK is not installed" in err
    assert "recserve[otel]" in err and "Traceback" not in err
