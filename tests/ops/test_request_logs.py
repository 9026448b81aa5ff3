"""Request ids and JSON logs: every line a request causes carries its id; the access log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from model_store import LocalStore
from model_store.manifest import new_version_id
from model_store.store import clone_model
from ops.conftest import Captured
from recommender.model import RecommenderModel
from service.app import create_app
from service.requestlog import RequestContextMiddleware
from service.settings import Settings
from training.data import InteractionData

TOKEN = "logs-token"


def app_client(store: Path, **overrides: object) -> TestClient:
    settings = Settings(store_uri=str(store), store_poll_interval=0, _env_file=None, **overrides)
    return TestClient(create_app(settings), raise_server_exceptions=False)


def test_the_callers_request_id_is_echoed(client: TestClient) -> None:
    resp = client.get("/healthz", headers={"X-Request-ID": "gw-7f3a:1"})
    assert resp.headers["X-Request-ID"] == "gw-7f3a:1"


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "line\tbreak", "ünïcode"])
def test_a_missing_or_unsafe_request_id_is_replaced(client: TestClient, given: str | None) -> None:
    headers = {"X-Request-ID": given.encode("utf-8")} if given is not None else {}
    first = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    second = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    assert first != second and first != given
    assert len(first) == 32 and int(first, 16) >= 0  # uuid4 hex


def test_cache_errors_carry_the_request_id(
    published_store: Path, small_data: InteractionData, logs: Captured
) -> None:
    """Redis unreachable: the cache's failure lines (in the pipeline, deep below the router) have
    the id of the request that hit them, and the access line too."""
    with app_client(published_store, redis_url="redis://127.0.0.1:1/0", access_log=True) as c:
        resp = c.get(
            "/recommend", params={"user_id": small_data.user_ids[0]}, headers={"X-Request-ID": "r-1"}
        )
        assert resp.status_code == 200
        c.get("/recommend", params={"user_id": small_data.user_ids[1]}, headers={"X-Request-ID": "r-2"})
    failures = [line for line in logs.lines() if "redis" in line["message"].lower()]
    assert failures and {line["request_id"] for line in failures} == {"r-1", "r-2"}
    access = logs.of("recserve.access")
    assert [(a["request_id"], a["status"]) for a in access] == [("r-1", 200), ("r-2", 200)]
    assert access[0]["method"] == "GET" and access[0]["path"] == "/recommend"
    assert access[0]["model_version"] == resp.headers["X-Model-Version"]
    assert access[0]["duration_ms"] > 0
    assert all(line["request_id"] == "-" for line in logs.of("recserve.state"))  # startup: no request


def test_store_errors_logged_in_a_worker_thread_carry_the_request_id(
    tmp_path: Path, trained: tuple[RecommenderModel, dict], logs: Captured
) -> None:
    """/admin/reload loads in a thread (asyncio.to_thread copies the context): the refusal's
    error line has the id of the reload request."""
    store = LocalStore(tmp_path / "store")
    store.publish(clone_model(trained[0], new_version_id()))
    with app_client(store.root, admin_token=TOKEN) as c:
        bad = store.publish(clone_model(trained[0], new_version_id()), make_current=False)
        (store.bundle_path(bad) / "manifest.json").unlink()
        store.backend.write_atomic("CURRENT", f"{bad}\n".encode())
        headers = {"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "reload-9"}
        assert c.post("/admin/reload", headers=headers).status_code == 409
    refusals = [line for line in logs.of("recserve.state") if "refused" in line["message"]]
    assert [line["request_id"] for line in refusals] == ["reload-9"]
    assert refusals[0]["level"] == "ERROR" and bad in refusals[0]["message"]


def test_a_crash_answers_500_with_the_request_id_and_logs_the_traceback_with_it(
    client: TestClient, small_data: InteractionData, logs: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected failure")

    monkeypatch.setattr(client.app.state.serving, "recommend", crash)
    monkeypatch.setattr(client.app.state.serving, "recommend_steps", crash)  # a micro-batch's entry
    with TestClient(client.app, raise_server_exceptions=False) as c:
        resp = c.get(
            "/recommend", params={"user_id": small_data.user_ids[0]}, headers={"X-Request-ID": "boom"}
        )
    assert resp.status_code == 500
    assert resp.headers["X-Request-ID"] == "boom"
    assert resp.json() == {"error": {"code": "internal_error", "message": "internal error", "field": None}}
    (error,) = [line for line in logs.of("recserve.errors") if line["level"] == "ERROR"]
    assert error["request_id"] == "boom"
    assert "RuntimeError: injected failure" in error["exc_info"]


def test_access_log_is_off_by_default(
    client: TestClient, small_data: InteractionData, logs: Captured
) -> None:
    assert client.get("/recommend", params={"user_id": small_data.user_ids[0]}).status_code == 200
    assert logs.of("recserve.access") == []


def test_access_log_skips_probes_and_scrapes(published_store: Path, logs: Captured) -> None:
    with app_client(published_store, access_log=True) as c:
        for path in ("/metrics", "/healthz", "/readyz", "/similar-items?item_id=nope"):
            c.get(path)
    assert [(a["path"], a["status"]) for a in logs.of("recserve.access")] == [("/similar-items", 404)]


async def _ok(scope: dict, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """A bare ASGI app: 500 on /fail, else 200."""
    status = 500 if scope["path"] == "/fail" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


@pytest.mark.parametrize(
    ("rate", "draws", "logged_ok"),
    [(0.0, [0.0, 0.0, 0.0], 0), (1.0, [0.99, 0.5, 0.0], 3), (0.25, [0.1, 0.3, 0.2], 2)],
)
def test_access_log_samples_answers_but_keeps_every_5xx(
    rate: float, draws: list[float], logged_ok: int, logs: Captured
) -> None:
    values = iter(draws)
    app = RequestContextMiddleware(_ok, access_log_enabled=True, sample_rate=rate, rng=lambda: next(values))
    c = TestClient(app)  # no `with`: the bare app has no lifespan
    for _ in draws:
        assert c.get("/recommend").status_code == 200
    assert c.get("/fail").status_code == 500
    statuses = [a["status"] for a in logs.of("recserve.access")]
    assert statuses.count(200) == logged_ok
    assert statuses.count(500) == 1


def test_every_line_is_one_json_object_with_the_common_fields(
    published_store: Path, small_data: InteractionData, logs: Captured
) -> None:
    with app_client(published_store, access_log=True) as c:
        c.get("/recommend", params={"user_id": small_data.user_ids[0]})
    lines = logs.lines()
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= set(line)
