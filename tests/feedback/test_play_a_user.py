"""A user's session end to end: /recommend → feedback on the top item → the next answer leaves it
out; then `recserve retrain` → the service serves the new version (POST /admin/reload, as the
store poller would) and its manifest counts the event. Plus the command's failures and its
precompute into Redis."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from retrain_support import copy_store, publish_tiny

from eventstore import Event, open_event_store
from recserve.cli import main
from service.app import create_app
from service.settings import Settings

SHARED_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "store"
    publish_tiny(root)
    return root


@pytest.fixture
def setup(template: Path, tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "store"
    copy_store(template, root)
    url = f"sqlite:///{tmp_path / 'events.db'}"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    return root, url


def retrain_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict | None, str]:
    capsys.readouterr()
    code = main(["retrain", *args, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_play_a_user(setup: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    root, url = setup
    settings = Settings(
        store_uri=str(root),
        database_url=url,
        admin_token="t0ken",
        store_poll_interval=0,
        cache_size=0,
        _env_file=None,
    )
    with TestClient(create_app(settings)) as client:
        first = client.get("/recommend", params={"user_id": "u10", "k": 5}).json()
        top = first["items"][0]["item_id"]
        click = {
            "user_id": "u10",
            "item_id": top,
            "type": "click",
            "recomm_id": first["recomm_id"],
            "event_id": "x1",
        }
        assert client.post("/feedback", json=click).status_code == 202
        second = client.get("/recommend", params={"user_id": "u10", "k": 5}).json()
        assert top not in [i["item_id"] for i in second["items"]]

        code, report, err = retrain_cli(capsys, "--store", str(root), "--database-url", url)
        assert code == 0, err
        new = report["version"]
        assert new and new != first["model_version"] and report["events"]["used"] == 1

        reload = client.post("/admin/reload", headers={"Authorization": "Bearer t0ken"})
        assert reload.status_code == 200 and reload.json()["model_version"] == new
        third = client.get("/recommend", params={"user_id": "u10", "k": 5})
        assert third.headers["X-Model-Version"] == new
        assert top not in [i["item_id"] for i in third.json()["items"]]  # now a training item
        manifest = json.loads((root / "versions" / new / "manifest.json").read_text())
        assert manifest["training_config"]["data"]["events"]["used"] == 1
        assert manifest["training_config"]["data"]["events"]["watermark"] == 1
        # the event is in the model now: the fresh state no longer counts it
        serving, holder = client.app.state.serving, client.app.state.holder  # type: ignore[attr-defined]
        assert not serving._fresh(holder.current, ("u10",))[0]


def test_retrain_refuses_clearly(
    setup: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, url = setup
    bare = f"sqlite:///{tmp_path / 'bare.db'}"
    code, _, err = retrain_cli(capsys, "--store", str(root), "--database-url", bare)
    assert code == 1 and "recserve db upgrade" in err and "Traceback" not in err
    store = open_event_store(url)
    try:
        with store.retrain_lock():
            code, _, err = retrain_cli(capsys, "--store", str(root), "--database-url", url)
        assert code == 1 and "another retrain is running" in err
    finally:
        store.close()
    code, report, _ = retrain_cli(capsys, "--store", str(root), "--database-url", url)
    assert code == 0 and report["skipped"] is True  # nothing new: exit 0, nothing published


def test_retrain_precomputes_the_new_models_lists_before_promoting(
    setup: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, url = setup
    prefix = f"test-recserve-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("RECSERVE_REDIS_PREFIX", prefix)
    store = open_event_store(url)
    store.append([Event("u1", "i2", "click", 1.0)])
    store.close()
    client = redis.Redis.from_url(SHARED_REDIS)
    try:
        code, report, err = retrain_cli(
            capsys, "--store", str(root), "--database-url", url, "--redis-url", SHARED_REDIS
        )
        assert code == 0, err
        assert report["precomputed"] is True
        assert client.exists(f"{prefix}:{report['version']}:ready")
        assert client.exists(f"{prefix}:{report['version']}:rec:u1")
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
