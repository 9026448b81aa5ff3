"""``/dashboard/api/feedback``: events per type per hour and click-through by model version, from
the event store (SQLite and PostgreSQL), with the lists this process served written alongside."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eventstore import EventStore, HourlyCounts, SchemaMissing, hour_of, open_event_store
from service.app import create_app
from service.dashboard.feedback_view import MAX_VERSIONS, summarize
from service.impressions import ServedLists
from service.metrics import Metrics
from service.settings import Settings

KEY = "dashboard-test-key-0123456789"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    store = open_event_store(url)
    store.upgrade()
    store.close()
    return url


@pytest.fixture
def make_client(published_store: Path, database_url: str) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings: dict[str, Any] = {
            "store_uri": str(published_store),
            "database_url": database_url,
            "cache_size": 0,
            "_env_file": None,
        }
        settings.update(overrides)
        c = TestClient(create_app(Settings(**settings)))
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_counts_and_click_through_are_what_was_served_and_posted(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    model = client.app.state.holder.current.model
    version = model.version
    users = model.user_ids.externals(list(range(6)))
    answers = [client.get("/recommend", params={"user_id": u, "k": 5}).json() for u in users]
    similar = client.get("/similar-items", params={"item_id": model.item_ids.external(0)}).json()
    assert all(a["recomm_id"].endswith(f".{version}") for a in [*answers, similar])
    h = hour_of(client.get("/dashboard/api/feedback", params={"hours": 1}).json()["now"])
    at = h * 3600.0

    def fb(type_: str, ts: float, recomm_id: str | None = None, event_id: str | None = None) -> dict:
        event = {
            "user_id": users[0],
            "item_id": answers[0]["items"][0]["item_id"],
            "type": type_,
            "timestamp": ts,
        }
        if recomm_id is not None:
            event["recomm_id"] = recomm_id
        if event_id is not None:
            event["event_id"] = event_id
        return event

    forged = "p0123456789abcdef.20200101T000000000000Z-dead"  # well-formed, never served here
    events = [
        fb("click", at + 1, answers[0]["recomm_id"]),
        fb("click", at + 2, answers[1]["recomm_id"], event_id="once"),
        fb("click", at + 3, answers[1]["recomm_id"], event_id="once"),  # a duplicate: counted once
        fb("click", at + 4, similar["recomm_id"]),
        fb("purchase", at + 5, answers[0]["recomm_id"]),
        fb("view", at + 6, answers[2]["recomm_id"]),
        fb("view", at + 7),  # no recomm_id
        fb("click", at + 8, "from-another-system"),  # not recserve's format
        fb("like", at + 9, forged),
        fb("click", at - 1, answers[3]["recomm_id"]),  # the last second of the hour before
        fb("click", at - 2 * 3600, answers[4]["recomm_id"]),  # outside a two-hour window
    ]
    posted = client.post("/feedback", json={"events": events})
    assert posted.status_code == 202 and posted.json()["accepted"] == len(events) - 1

    body = client.get("/dashboard/api/feedback", params={"hours": 2}).json()
    assert body["available"] is True
    assert body["types"] == ["view", "click", "purchase", "like", "dislike"]
    assert len(body["per_hour"]) == 2 and body["until"] - body["from"] == 2 * 3600
    by_hour = {row["hour"]: row for row in body["per_hour"]}
    assert by_hour[h * 3600]["counts"] == {"view": 2, "click": 4, "purchase": 1, "like": 1, "dislike": 0}
    assert by_hour[(h - 1) * 3600]["counts"]["click"] == 1 and by_hour[(h - 1) * 3600]["total"] == 1
    assert body["totals"]["click"] == 5 and body["total"] == 9

    rows = {row["model_version"]: row for row in body["by_version"]}
    served = rows[version]
    assert body["by_version"][0] is served and served["serving"] is True
    assert served["lists_served"] == body["lists_served"] == len(answers) + 1
    assert served["credited"] == {"view": 1, "click": 4, "purchase": 1, "like": 0, "dislike": 0}
    assert served["ctr"] == 4 / (len(answers) + 1)
    assert served["rates"]["purchase"] == 1 / (len(answers) + 1)
    ghost = rows["20200101T000000000000Z-dead"]
    assert ghost["lists_served"] == 0 and ghost["ctr"] is None and ghost["credited"]["like"] == 1
    assert body["not_credited"]["no_recomm_id"]["view"] == 1
    assert body["not_credited"]["unrecognised"]["click"] == 1
    assert not body["catching_up"] and body["folded_seq"] == body["watermark"]

    # more lists served: the next read has them (written before the read), nothing twice
    client.get("/recommend", params={"user_id": users[5], "k": 5})
    again = client.get("/dashboard/api/feedback", params={"hours": 2}).json()
    assert again["lists_served"] == len(answers) + 2 and again["totals"] == body["totals"]


def test_the_data_is_behind_the_api_key_when_keys_are_set(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_keys=KEY)
    assert client.get("/dashboard").status_code == 200  # the page shell holds no data
    refused = client.get("/dashboard/api/feedback")
    assert refused.status_code == 401 and refused.json()["error"]["field"] == "x-api-key"
    assert client.get("/dashboard/static/feedback.js").status_code == 200
    ok = client.get("/dashboard/api/feedback", headers={"X-API-Key": KEY})
    assert ok.status_code == 200 and len(ok.json()["per_hour"]) == 48


def test_hours_out_of_range_is_a_422_naming_it(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    for hours in (0, 169, "x"):
        resp = client.get("/dashboard/api/feedback", params={"hours": hours})
        assert resp.status_code == 422 and resp.json()["error"]["field"] == "hours"


def test_an_unmigrated_store_is_reported_with_the_upgrade_to_run(
    published_store: Path, tmp_path: Path
) -> None:
    """Not an error status: the page shows the cause in its section (as the model section shows
    an unreadable model store) and the browser logs no failed request."""
    url = f"sqlite:///{tmp_path / 'none.db'}"
    app = create_app(Settings(store_uri=str(published_store), database_url=url, _env_file=None))
    with TestClient(app) as c:
        resp = c.get("/dashboard/api/feedback")
        assert resp.status_code == 200 and resp.json()["available"] is False
        assert "recserve db upgrade" in resp.json()["error"]
        assert c.get("/recommend", params={"user_id": "u1"}).status_code == 200  # lists never need it
        store = open_event_store(url)
        store.upgrade()  # fixed while running: the next read works (the service retries every 2 s)
        store.close()
        deadline = time.monotonic() + 10
        while not (body := c.get("/dashboard/api/feedback").json())["available"]:
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
        assert body["lists_served"] == 1  # the list served before the store could be used


def test_served_lists_are_written_once_and_kept_while_the_store_fails(tmp_path: Path) -> None:
    metrics = Metrics()
    store: EventStore = open_event_store(f"sqlite:///{tmp_path / 'events.db'}")
    opened: list[EventStore] = []
    clock = [3600.0 * 500_000 + 10]
    lists = ServedLists(metrics, lambda: opened[0] if opened else None, clock=lambda: clock[0])
    metrics.lists_served.labels("v1", "personalized").inc(3)
    metrics.lists_served.labels("v1", "popularity").inc(2)
    assert lists.flush() == 0  # the store has not been opened: nothing written, nothing lost
    opened.append(store)
    with pytest.raises(SchemaMissing):
        lists.flush()  # no schema yet: the delta stays for the next write
    store.upgrade()
    assert lists.flush() == 5
    assert lists.flush() == 0
    metrics.lists_served.labels("v2", "similar_items").inc()
    metrics.lists_served.labels("v1", "personalized").inc()
    clock[0] += 3600
    assert lists.flush() == 2
    got = store.hourly(500_000, 500_001).served
    assert sorted(got) == [(500_000, "v1", 5), (500_001, "v1", 1), (500_001, "v2", 1)]
    store.close()


def test_versions_beyond_the_limit_are_summed_into_one_row() -> None:
    n = MAX_VERSIONS + 3
    counts = HourlyCounts(
        10,
        11,
        events=tuple((10, "click", f"v{i:02d}", 1) for i in range(n)),
        served=tuple((11, f"v{i:02d}", 100 - i) for i in range(n)),
        folded_seq=5,
        watermark=5,
    )
    body = summarize(counts, ["click"], serving=f"v{n - 1:02d}", now=0.0)
    rows = body["by_version"]
    assert len(rows) == MAX_VERSIONS + 1
    assert rows[0]["model_version"] == f"v{n - 1:02d}" and rows[0]["serving"]  # the serving one first
    assert [r["model_version"] for r in rows[1:-1]] == [f"v{i:02d}" for i in range(MAX_VERSIONS - 1)]
    rest = rows[-1]
    assert rest["model_version"] is None and rest["versions"] == n - MAX_VERSIONS == 3
    assert rest["lists_served"] == sum(100 - i for i in range(MAX_VERSIONS - 1, n - 1))
    assert rest["credited"]["click"] == 3 and rest["ctr"] == 3 / rest["lists_served"]
    assert sum(r["lists_served"] for r in rows) == body["lists_served"]
    assert [h["hour"] for h in body["per_hour"]] == [36_000, 39_600] and body["total"] == n


def test_history_lists_the_users_feedback_since_training_newest_first(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    model = client.app.state.holder.current.model
    user = model.user_ids.external(0)
    fresh_items = [model.item_ids.external(i) for i in range(model.n_items) if i not in set(model.seen(0))][
        :2
    ]
    events = [
        {"user_id": user, "item_id": fresh_items[0], "type": "view"},
        {"user_id": user, "item_id": "not-in-the-catalogue", "type": "click"},
        {"user_id": user, "item_id": fresh_items[1], "type": "click"},
    ]
    assert client.post("/feedback", json={"events": events}).status_code == 202
    body = client.get("/dashboard/api/history", params={"user_id": user}).json()
    assert [(f["item_id"], f["type"], f["known"]) for f in body["fresh"]] == [
        (fresh_items[1], "click", True),
        ("not-in-the-catalogue", "click", False),
        (fresh_items[0], "view", True),
    ]
    first = model.item_ids.index(fresh_items[1])
    assert body["fresh"][0]["attributes"] == {n: v[first] for n, v in model.item_attributes.items()}
    assert [it["item_id"] for it in body["items"]] == model.item_ids.externals(model.seen(0))
    answer = client.get("/recommend", params={"user_id": user, "k": model.n_items}).json()
    assert not set(fresh_items) & {it["item_id"] for it in answer["items"]}  # exclude_seen drops them too
    cold = client.get("/dashboard/api/history", params={"user_id": "new-user"}).json()
    assert cold["known"] is False and cold["fresh"] == []
