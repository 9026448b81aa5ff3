"""The gauges the alerts read: model loaded/refused/age, breaker state, build info."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bundle_faults import damage
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from listcache import CircuitBreaker
from model_store import LocalStore
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel
from service.app import create_app
from service.opsmetrics import CallbackGauge, breaker_state_reader, seconds_since
from service.settings import Settings

TOKEN = "ops-metrics-token"


def sample(client: TestClient, name: str) -> float | None:
    """Value of a label-less sample in /metrics, or None when the family has no sample."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def make_client(store_root: Path, **overrides: object) -> TestClient:
    options: dict[str, object] = {"store_poll_interval": 0, "admin_token": TOKEN, **overrides}
    return TestClient(create_app(Settings(store_uri=str(store_root), _env_file=None, **options)))


@pytest.fixture
def model(trained: tuple[RecommenderModel, dict]) -> RecommenderModel:
    return trained[0]


@pytest.fixture
def store(tmp_path: Path, model: RecommenderModel) -> LocalStore:
    s = LocalStore(tmp_path / "store")
    s.publish(clone_model(model, new_version_id()))
    return s


def test_model_age_is_seconds_since_the_bundles_created_at(client: TestClient) -> None:
    created = datetime.fromisoformat(client.get("/readyz").json()["model_created_at"])
    before = time.time() - created.timestamp()
    age = sample(client, "recserve_model_age_seconds")
    after = time.time() - created.timestamp()
    assert age is not None and before <= age <= after
    assert sample(client, "recserve_model_loaded") == 1.0
    assert sample(client, "recserve_model_refused") == 0.0


def test_max_age_and_build_revision_come_from_the_settings(published_store: Path) -> None:
    with make_client(published_store, model_max_age_s=3600, build_revision="abc123") as c:
        assert sample(c, "recserve_model_max_age_seconds") == 3600.0
        text = c.get("/metrics").text
    assert 'recserve_build_info{revision="abc123",version="' in text


def test_without_a_model_there_is_no_age_and_loaded_is_zero(tmp_path: Path) -> None:
    with make_client(tmp_path / "empty") as c:
        assert c.get("/readyz").status_code == 503
        assert sample(c, "recserve_model_loaded") == 0.0
        assert sample(c, "recserve_model_age_seconds") is None
        assert "# TYPE recserve_model_age_seconds gauge" in c.get("/metrics").text


def test_refused_is_set_by_a_corrupt_current_and_cleared_by_a_rollback(
    store: LocalStore, model: RecommenderModel
) -> None:
    good = store.current_version()
    with make_client(store.root) as c:
        bad = store.publish(clone_model(model, new_version_id()), make_current=False)
        damage(store.bundle_path(bad), "checksum")
        store.backend.write_atomic("CURRENT", f"{bad}\n".encode())
        assert c.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 409
        assert sample(c, "recserve_model_refused") == 1.0
        assert sample(c, "recserve_model_loaded") == 1.0  # the old model keeps serving

        store.backend.write_atomic("CURRENT", f"{good}\n".encode())  # what `store rollback` does
        resp = c.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code == 200 and resp.json()["swapped"] is False
        assert sample(c, "recserve_model_refused") == 0.0
        assert c.get("/readyz").json()["refused_version"] is None


def test_breaker_state_opens_when_redis_is_unreachable(published_store: Path, small_data) -> None:
    """A Redis URL nobody listens on: requests still answer, and the gauge shows the open breaker."""
    with make_client(
        published_store,
        redis_url="redis://127.0.0.1:1/0",
        redis_breaker_failures=1,
        redis_breaker_reset_s=3600,
    ) as c:
        assert sample(c, "recserve_redis_breaker_state") == 0.0
        resp = c.get("/recommend", params={"user_id": small_data.user_ids[0]})
        assert resp.status_code == 200
        assert sample(c, "recserve_redis_breaker_state") == 2.0


def test_no_breaker_sample_without_redis(client: TestClient) -> None:
    assert sample(client, "recserve_redis_breaker_state") is None
    assert "# TYPE recserve_redis_breaker_state gauge" in client.get("/metrics").text


def test_breaker_reader_maps_every_state() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=10, clock=lambda: now[0])
    read = breaker_state_reader(breaker)
    assert read() == 0.0
    breaker.record_failure()
    assert read() == 2.0
    now[0] = 11.0
    assert read() == 1.0
    breaker.record_success()
    assert read() == 0.0


def test_a_failing_callback_drops_its_sample_not_the_scrape() -> None:
    registry = CollectorRegistry()
    ok = CallbackGauge("ok_value", "works", registry)
    broken = CallbackGauge("broken_value", "raises", registry)
    ok.set_callback(lambda: 3.0)
    broken.set_callback(lambda: 1 / 0)
    text = generate_latest(registry).decode()
    assert "ok_value 3.0" in text
    assert "# TYPE broken_value gauge" in text
    assert "\nbroken_value " not in text


@pytest.mark.parametrize("value", [None, 17, "yesterday", "2026-01-01T00:00:00"])
def test_seconds_since_refuses_what_it_cannot_read(value: object) -> None:
    assert seconds_since(value) is None


def test_seconds_since_reads_a_zoned_timestamp() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    now = (created + timedelta(hours=2)).timestamp()
    assert seconds_since(created.isoformat(), now=now) == 7200.0
    shifted = created.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    assert seconds_since(shifted, now=now) == 7200.0
