"""Keys on the door: X-API-Key on the list endpoints, rotation from a file, the metrics key/port."""

from __future__ import annotations

import hmac
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from deploy.helpers import COMPOSE, ROOT, free_port, require_binary
from fastapi.testclient import TestClient

from eventstore import open_event_store
from ops.conftest import Captured
from recserve.cli import main
from service import auth
from service.app import create_app
from service.auth import KeyFileError, KeyRing, key_id
from service.settings import Settings
from training.data import InteractionData

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-fedcba9876543210"
KEY_C = "key-c-aaaaaaaaaaaaaaaa"


def make(store: Path, **overrides: object) -> TestClient:
    settings = Settings(store_uri=str(store), store_poll_interval=0, _env_file=None, **overrides)
    return TestClient(create_app(settings))


@pytest.fixture
def keyed(published_store: Path) -> Iterator[TestClient]:
    with make(published_store, api_keys=f"{KEY_A}, {KEY_B}") as c:
        yield c


def list_requests(data: InteractionData) -> list[tuple[str, str, dict]]:
    """(method, path, kwargs) of one request to every list endpoint."""
    user, item = data.user_ids[0], data.item_ids[0]
    return [
        ("GET", "/recommend", {"params": {"user_id": user}}),
        ("POST", "/recommend", {"json": {"user_id": user}}),
        ("POST", "/recommend/batch", {"json": {"user_ids": [user]}}),
        ("GET", "/similar-items", {"params": {"item_id": item}}),
        ("POST", "/similar-items", {"json": {"item_id": item}}),
    ]


def test_off_by_default(client: TestClient, small_data: InteractionData) -> None:
    for method, path, kwargs in list_requests(small_data):
        assert client.request(method, path, **kwargs).status_code == 200, path
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def test_every_list_endpoint_needs_a_valid_key(keyed: TestClient, small_data: InteractionData) -> None:
    for method, path, kwargs in list_requests(small_data):
        for headers in ({}, {"X-API-Key": "wrong-key-0000000000"}, {"X-API-Key": ""}):
            resp = keyed.request(method, path, headers=headers, **kwargs)
            assert resp.status_code == 401, (path, headers)
            assert resp.json() == {
                "error": {
                    "code": "unauthorized",
                    "message": "a valid X-API-Key header is required",
                    "field": "x-api-key",
                }
            }
        for key in (KEY_A, KEY_B):
            assert keyed.request(method, path, headers={"X-API-Key": key}, **kwargs).status_code == 200


def test_feedback_needs_a_valid_key_too(published_store: Path, tmp_path: Path, small_data) -> None:
    """POST /feedback stores events: behind the same keys, and a 401 stores nothing."""
    url = f"sqlite:///{tmp_path}/events.db"
    events = open_event_store(url)
    events.upgrade()
    events.close()
    event = {"user_id": small_data.user_ids[0], "item_id": small_data.item_ids[0], "type": "click"}
    with make(published_store, api_keys=KEY_A, database_url=url) as c:
        for headers in ({}, {"X-API-Key": KEY_B}):
            resp = c.post("/feedback", json={**event, "event_id": "e-refused"}, headers=headers)
            assert resp.status_code == 401 and resp.json()["error"]["field"] == "x-api-key"
        resp = c.post("/feedback", json={**event, "event_id": "e-1"}, headers={"X-API-Key": KEY_A})
        assert resp.status_code == 202 and resp.json()["accepted"] == 1
        again = c.post("/feedback", json={**event, "event_id": "e-refused"}, headers={"X-API-Key": KEY_A})
        assert again.json() == {"accepted": 1, "duplicates": 0, "unknown_users": 0, "unknown_items": 0}


def test_probes_and_metrics_stay_open(keyed: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert keyed.get(path).status_code == 200, path


def test_openapi_declares_the_scheme_on_the_list_and_feedback_endpoints_only(keyed: TestClient) -> None:
    doc = keyed.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["APIKeyHeader"]["description"],
    }
    for path, ops in doc["paths"].items():
        for op in ops.values():
            protected = {"APIKeyHeader": []} in op.get("security", [])
            assert protected == path.startswith(("/recommend", "/similar-items", "/feedback")), path
            assert ("401" in op["responses"]) == protected, path


def test_the_key_id_not_the_key_goes_to_the_access_log(
    published_store: Path, small_data: InteractionData, logs: Captured
) -> None:
    with make(published_store, api_keys=KEY_A, access_log=True) as c:
        c.get("/recommend", params={"user_id": small_data.user_ids[0]}, headers={"X-API-Key": KEY_A})
    (line,) = logs.of("recserve.access")
    assert line["api_key_id"] == key_id(KEY_A)
    assert KEY_A not in logs.stream.getvalue()


# -- the keys file ---------------------------------------------------------------------------------
def write(path: Path, text: str) -> None:
    """Replace the file atomically, as an operator's tooling (or a Kubernetes Secret) does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_keys_file_is_read_with_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2026-11\n{KEY_A}\n\n  {KEY_B}  \n")
    ring = KeyRing(None, path)
    assert ring.enabled and len(ring) == 2
    assert ring.check(KEY_A) == key_id(KEY_A) and ring.check(KEY_B) == key_id(KEY_B)
    assert ring.check(KEY_C) is None and ring.check(None) is None and ring.check("") is None


def test_a_rotated_file_is_reloaded_within_a_second_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(KEY_A + "\n")
    now = [0.0]
    ring = KeyRing(None, path, clock=lambda: now[0])
    write(path, f"{KEY_A}\n{KEY_B}\n")  # step 1: add the new key
    now[0] = 0.5
    assert ring.check(KEY_B) is None  # not looked at yet: one stat per second at most
    now[0] = 1.1
    assert ring.check(KEY_B) is not None and ring.check(KEY_A) is not None
    write(path, f"{KEY_B}\n")  # step 2: clients moved, retire the old key
    now[0] = 2.2
    assert ring.check(KEY_A) is None and ring.check(KEY_B) is not None


def test_an_in_place_edit_is_seen_too(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(KEY_A + "\n")
    now = [0.0]
    ring = KeyRing(None, path, clock=lambda: now[0])
    with path.open("a") as f:
        f.write(KEY_C + "\n")
    now[0] = 5.0
    assert ring.check(KEY_C) is not None


def test_a_file_broken_after_start_keeps_the_previous_keys(tmp_path: Path, caplog) -> None:
    path = tmp_path / "keys"
    path.write_text(KEY_A + "\n")
    now = [0.0]
    ring = KeyRing(None, path, clock=lambda: now[0])
    write(path, "short\n")
    now[0] = 1.5
    assert ring.check(KEY_A) is not None and ring.check("short") is None
    path.unlink()
    for step in range(3, 6):
        now[0] = float(step)
        assert ring.check(KEY_A) is not None
    errors = [r for r in caplog.records if r.name == "recserve.auth" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "line 1" in errors[0].getMessage()  # logged once, not every second
    write(path, KEY_B + "\n")  # fixed: the new keys apply
    now[0] = 7.0
    assert ring.check(KEY_B) is not None and ring.check(KEY_A) is None


def test_an_empty_keys_file_locks_the_door(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# no keys yet\n")
    ring = KeyRing(None, path)
    assert ring.enabled and len(ring) == 0 and ring.check(KEY_A) is None


@pytest.mark.parametrize(
    ("inline", "file_text", "message"),
    [
        (None, None, r"RECSERVE_API_KEYS_FILE .*missing: cannot read"),
        (None, f"{KEY_A}\n# ok\nabc\n", r"RECSERVE_API_KEYS_FILE .*keys line 3: API key shorter than 16"),
        (f"{KEY_A},tiny", "", r"RECSERVE_API_KEYS: API key shorter than 16"),
    ],
)
def test_unusable_keys_stop_the_start_naming_the_setting(
    tmp_path: Path, inline: str | None, file_text: str | None, message: str
) -> None:
    path = tmp_path / ("keys" if file_text is not None else "missing")
    if file_text is not None:
        path.write_text(file_text)
    with pytest.raises(KeyFileError, match=message):
        KeyRing(inline, path if inline is None else None)


def test_serve_names_a_bad_keys_file_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RECSERVE_API_KEYS_FILE", str(tmp_path / "nope"))
    assert (
        main(["serve", "--store", str(tmp_path), "--port", "0"]) == 1
    )  # a runtime failure (exit 2 is for usage errors)
    err = capsys.readouterr().err
    assert f"RECSERVE_API_KEYS_FILE {tmp_path / 'nope'}: cannot read" in err and "Traceback" not in err


def test_every_key_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the first, the last and no key cost the same number of comparisons."""
    calls = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    ring = KeyRing(f"{KEY_A},{KEY_B},{KEY_C}")
    for given in (KEY_A, KEY_C, "nothing-like-a-key-at-all"):
        calls.clear()
        ring.check(given)
        assert len(calls) == 3


def test_app_reloads_the_keys_file_it_was_given(published_store: Path, tmp_path: Path, small_data) -> None:
    path = tmp_path / "keys"
    path.write_text(KEY_A + "\n")
    params = {"user_id": small_data.user_ids[0]}
    with make(published_store, api_keys_file=str(path)) as c:
        assert c.get("/recommend", params=params, headers={"X-API-Key": KEY_A}).status_code == 200
        write(path, KEY_B + "\n")
        later = time.monotonic() + 5.0
        c.app.state.api_keys._clock = lambda: later  # the next check is due: no sleeping in tests
        assert c.get("/recommend", params=params, headers={"X-API-Key": KEY_A}).status_code == 401
        assert c.get("/recommend", params=params, headers={"X-API-Key": KEY_B}).status_code == 200


# -- /metrics ------------------------------------------------------------------------------------------
def test_metrics_behind_its_own_key(published_store: Path) -> None:
    with make(published_store, api_keys=KEY_A, metrics_key="metrics-key-0123456789") as c:
        for headers in ({}, {"Authorization": f"Bearer {KEY_A}"}, {"X-API-Key": KEY_A}):
            resp = c.get("/metrics", headers=headers)
            assert resp.status_code == 401 and resp.json()["error"]["field"] == "authorization"
        ok = c.get("/metrics", headers={"Authorization": "Bearer metrics-key-0123456789"})
        assert ok.status_code == 200 and "recserve_requests_total" in ok.text
        assert c.get("/healthz").status_code == 200


def test_metrics_on_its_own_port(published_store: Path) -> None:
    port = free_port()
    with make(published_store, metrics_port=port) as c:
        assert c.get("/metrics").status_code == 404
        c.get("/healthz")
        resp = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert resp.status_code == 200 and 'recserve_requests_total{endpoint="/healthz"' in resp.text
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)


# -- the compose example -------------------------------------------------------------------------------
def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = require_binary("docker-compose", "docker-compose")
    clean = {k: v for k, v in os.environ.items() if k != "RECSERVE_API_KEYS"}
    clean["GRAFANA_ADMIN_PASSWORD"] = "test-only"  # the other required variable of the compose file
    return subprocess.run(
        [exe, "-f", str(COMPOSE), "config"], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
    )


def test_compose_requires_api_keys_and_passes_them_to_the_api() -> None:
    missing = _compose_config({})
    assert missing.returncode != 0 and "RECSERVE_API_KEYS" in missing.stderr
    given = _compose_config({"RECSERVE_API_KEYS": f"{KEY_A},{KEY_B}"})
    assert given.returncode == 0, given.stderr
    api_env = yaml.safe_load(given.stdout)["services"]["api"]["environment"]
    assert len(KeyRing(api_env["RECSERVE_API_KEYS"])) == 2
