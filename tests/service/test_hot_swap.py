"""Hot swap inside one app: admin reload, polling, refusing bad bundles, what /readyz and
/metrics report."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle_faults import FAULTS, damage
from fastapi.testclient import TestClient

from model_store import LocalStore
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel
from service import presenter
from service.app import create_app
from service.queries import RecommendQuery
from service.settings import Settings

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def model(trained: tuple[RecommenderModel, dict]) -> RecommenderModel:
    return trained[0]


@pytest.fixture
def store(tmp_path: Path, model: RecommenderModel) -> LocalStore:
    s = LocalStore(tmp_path / "store")
    s.publish(clone_model(model, new_version_id()))
    return s


def make_client(store: LocalStore, **overrides: object) -> TestClient:
    options: dict[str, object] = {"store_poll_interval": 0, "admin_token": TOKEN, **overrides}
    return TestClient(create_app(Settings(store_uri=str(store.root), _env_file=None, **options)))


@pytest.fixture
def client(store: LocalStore) -> Iterator[TestClient]:
    with make_client(store) as c:
        yield c


def publish_bad(store: LocalStore, model: RecommenderModel, fault: str) -> tuple[str, str]:
    """Publish a good bundle without making it current, damage it, then point CURRENT at it
    (what disk corruption or a hand-edited store looks like to the service)."""
    version = store.publish(clone_model(model, new_version_id()), make_current=False)
    bad_file = damage(store.bundle_path(version), fault)
    store.backend.write_atomic("CURRENT", f"{version}\n".encode())
    return version, bad_file


def failures(client: TestClient, reason: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'recserve_model_load_failures_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_admin_endpoints_are_off_without_a_token(store: LocalStore) -> None:
    with make_client(store, admin_token=None) as c:
        resp = c.post("/admin/reload", headers=AUTH)
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_admin_reload_needs_the_token(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    resp = client.post("/admin/reload", headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"] == {
        "code": "unauthorized",
        "message": resp.json()["error"]["message"],
        "field": "authorization",
    }


def test_reload_swaps_in_a_new_version(
    client: TestClient, store: LocalStore, model: RecommenderModel
) -> None:
    first = store.current_version()
    user = model.user_ids.ids[0]
    resp = client.post("/admin/reload", headers=AUTH)
    assert resp.status_code == 200 and resp.json()["swapped"] is False
    second = store.publish(clone_model(model, new_version_id()))
    resp = client.post("/admin/reload", headers=AUTH)
    body = resp.json()
    assert resp.status_code == 200
    assert body["swapped"] is True and body["model_version"] == second and body["previous_version"] == first
    assert body["swap_seconds"] > 0
    rec = client.get("/recommend", params={"user_id": user})
    assert rec.json()["model_version"] == second and rec.headers["X-Model-Version"] == second
    sim = client.get("/similar-items", params={"item_id": model.item_ids.ids[0]})
    assert sim.headers["X-Model-Version"] == second
    assert client.get("/readyz").json()["model_version"] == second
    assert 'recserve_model_info{version="' + second + '"} 1.0' in client.get("/metrics").text


@pytest.mark.parametrize("fault", FAULTS)
def test_bad_bundle_is_refused_and_the_old_model_keeps_serving(
    client: TestClient, store: LocalStore, model: RecommenderModel, fault: str
) -> None:
    good = store.current_version()
    bad, bad_file = publish_bad(store, model, fault)
    resp = client.post("/admin/reload", headers=AUTH)
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert error["code"] == "model_refused"
    assert bad in error["message"]
    rec = client.get("/recommend", params={"user_id": model.user_ids.ids[1]})
    assert rec.status_code == 200 and rec.json()["model_version"] == good
    ready = client.get("/readyz")
    details = ready.json()
    assert ready.status_code == 200 and details["model_version"] == good
    assert details["refused_version"] == bad and bad in details["last_error"]
    if fault not in ("dims", "pickle"):
        assert bad_file in details["last_error"]
    assert failures(client, details["last_error_reason"]) == 1.0


def test_poller_swaps_and_does_not_retry_a_refused_version(
    store: LocalStore, model: RecommenderModel
) -> None:
    with make_client(store, store_poll_interval=0.05) as c:
        bad, _ = publish_bad(store, model, "checksum")
        deadline = time.monotonic() + 20
        while c.get("/readyz").json()["refused_version"] != bad:
            assert time.monotonic() < deadline, "poller never looked at the bad bundle"
            time.sleep(0.05)
        time.sleep(0.3)  # several more polls
        assert failures(c, "checksum_mismatch") == 1.0
        good = store.publish(clone_model(model, new_version_id()))
        while c.get("/readyz").json()["model_version"] != good:
            assert time.monotonic() < deadline, "poller never swapped in the good bundle"
            time.sleep(0.05)
        assert c.get("/readyz").json()["refused_version"] is None


def test_service_starts_on_an_empty_store_and_picks_up_the_first_model(
    tmp_path: Path, model: RecommenderModel
) -> None:
    (tmp_path / "empty").mkdir()  # an empty store; a missing one would fail with another message
    store = LocalStore(tmp_path / "empty")
    with make_client(store, store_poll_interval=0.05) as c:
        assert c.get("/readyz").status_code == 503
        assert c.get("/recommend", params={"user_id": "u"}).status_code == 503
        version = store.publish(clone_model(model, new_version_id()))
        deadline = time.monotonic() + 20
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert c.get("/readyz").json()["model_version"] == version
        assert failures(c, "store") == 1.0  # "no model published" counted once, not per poll


def test_an_in_flight_request_finishes_on_the_model_it_started_with(
    client: TestClient, store: LocalStore, model: RecommenderModel
) -> None:
    holder, serving = client.app.state.holder, client.app.state.serving
    old = holder.current
    entered, release = threading.Event(), threading.Event()
    real_recommend = old.model.recommend

    def slow_recommend(*args: object, **kwargs: object) -> object:
        entered.set()
        release.wait(10)
        return real_recommend(*args, **kwargs)

    old.model.recommend = slow_recommend  # type: ignore[method-assign]
    result: dict[str, object] = {}
    user_id = model.user_ids.ids[0]

    def request() -> None:
        loaded, answer = serving.recommend(RecommendQuery(user_id, 5))
        result.update(presenter.recommend_body(loaded.model, user_id, answer, explain=False))

    worker = threading.Thread(target=request)
    worker.start()
    assert entered.wait(10)
    new = store.publish(clone_model(model, new_version_id()))
    assert holder.load_current().swapped and holder.current.version == new
    release.set()
    worker.join(10)
    assert result["model_version"] == old.version != new
    assert len(result["items"]) == 5
