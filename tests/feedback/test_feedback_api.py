"""POST /feedback: 202 after commit, dedupe by event_id, the one error shape naming the field,
a bad batch stores nothing, unknown users and items accepted and counted, and a missing schema
is a 503 that says what to run."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from feedback_support import metric

from eventstore import EventStore


def event(i: int = 0, **kw: object) -> dict:
    body: dict = {"user_id": "u1", "item_id": f"i{i}", "type": "click", "event_id": f"e{i}"}
    body.update(kw)
    return body


def test_one_event_is_stored_and_counted(client: TestClient, events: EventStore) -> None:
    r = client.post("/feedback", json=event(3, timestamp=1_700_000_000, weight=2))
    assert r.status_code == 202
    assert r.json() == {"accepted": 1, "duplicates": 0, "unknown_users": 0, "unknown_items": 0}
    (stored,) = list(events.read())
    assert (stored.user_id, stored.item_id, stored.type, stored.timestamp, stored.weight) == (
        "u1", "i3", "click", 1_700_000_000.0, 2.0,
    )  # fmt: skip
    assert metric(client, "recserve_feedback_events_total", type="click", result="accepted") == 1


def test_the_same_event_id_is_stored_once(client: TestClient, events: EventStore) -> None:
    assert client.post("/feedback", json=event(1)).json()["accepted"] == 1
    r = client.post("/feedback", json={"events": [event(1), event(2), event(2)]})
    assert r.status_code == 202 and r.json()["accepted"] == 1 and r.json()["duplicates"] == 2
    assert sorted(e.event_id for e in events.read()) == ["e1", "e2"]
    assert metric(client, "recserve_feedback_events_total", type="click", result="duplicate") == 2


def test_a_batch_with_a_bad_event_is_refused_whole_naming_it(client: TestClient, events: EventStore) -> None:
    cases = [
        ({"events": [event(0), event(1), event(2, type="teleport")]}, "events.2.type", "unknown_event_type"),
        ({"events": [event(0), {"item_id": "i1", "type": "click"}]}, "events.1.user_id", "validation_error"),
        ({"events": [event(0), event(1, timestamp="yesterday")]}, "events.1.timestamp", "validation_error"),
        ({"events": [event(0, weight=float("1e300"))]}, "events.0.weight", "validation_error"),
        ({"events": [event(0, user_id="")]}, "events.0.user_id", "validation_error"),
        ({"events": [event(0, user_id="a\\u0000b")]}, None, None),  # JSON escape, checked below
        ({"events": [event(0, colour="red")]}, "events.0.colour", "validation_error"),
        ({"events": []}, "events", "validation_error"),
        (event(0, type="teleport"), "type", "unknown_event_type"),
        (event(0, item_id=7), "item_id", "validation_error"),
    ]
    for body, field, code in cases:
        if field is None:
            r = client.post(
                "/feedback",
                content=b'{"events": [{"user_id": "a\\u0000b", "item_id": "i1", "type": "click"}]}',
                headers={"content-type": "application/json"},
            )
            field, code = "events.0.user_id", "validation_error"
        else:
            r = client.post("/feedback", json=body)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert (error["field"], error["code"]) == (field, code), (body, error)
    assert events.count() == 0
    assert metric(client, "recserve_feedback_rejected_total", reason="invalid") == len(cases)


def test_a_batch_over_the_limit_is_refused(
    make_client: Callable[..., TestClient], events: EventStore
) -> None:
    client = make_client(feedback_max_batch=3)
    r = client.post("/feedback", json={"events": [event(i) for i in range(4)]})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "events" and "feedback_max_batch" in r.json()["error"]["message"]
    assert client.post("/feedback", json={"events": [event(i) for i in range(3)]}).status_code == 202
    assert events.count() == 3


def test_configured_types_only(make_client: Callable[..., TestClient]) -> None:
    client = make_client(feedback_types=("rate", "click"), feedback_positive_types=("click",))
    assert client.post("/feedback", json=event(1, type="rate")).status_code == 202
    r = client.post("/feedback", json=event(2, type="view"))
    assert r.status_code == 422 and "rate, click" in r.json()["error"]["message"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["FeedbackEvent"]
    assert schema["properties"]["type"]["enum"] == ["rate", "click"]


def test_unknown_users_and_items_are_accepted_and_counted(client: TestClient, events: EventStore) -> None:
    body = {"events": [event(1, user_id="newcomer"), event(2, item_id="brand-new"), event(3)]}
    r = client.post("/feedback", json=body)
    assert r.status_code == 202
    assert r.json() == {"accepted": 3, "duplicates": 0, "unknown_users": 1, "unknown_items": 1}
    assert events.count() == 3
    assert metric(client, "recserve_feedback_unknown_total", kind="user") == 1
    assert metric(client, "recserve_feedback_unknown_total", kind="item") == 1


def test_without_a_schema_feedback_is_a_503_naming_the_fix(
    make_client: Callable[..., TestClient], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    client = make_client(database_url=url)
    r = client.post("/feedback", json=event(1))
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "event_store_unavailable"
    assert "recserve db upgrade" in r.json()["error"]["message"]
    assert not (tmp_path / "never-migrated.db").exists()  # the service creates no database
    assert client.get("/recommend", params={"user_id": "u1"}).status_code == 200  # lists do not care
    assert metric(client, "recserve_feedback_rejected_total", reason="storage") == 1


def test_every_list_carries_a_unique_recomm_id_and_clicks_are_credited(client: TestClient) -> None:
    answers = [
        client.get("/recommend", params={"user_id": "u1", "k": 3}).json(),
        client.get("/recommend", params={"user_id": "u1", "k": 3}).json(),
        client.get("/recommend", params={"user_id": "stranger", "k": 3}).json(),
        client.get("/similar-items", params={"item_id": "i1", "k": 3}).json(),
    ]
    batch = client.post("/recommend/batch", json={"user_ids": ["u1", "u2", "nobody"], "k": 3}).json()
    ids = (
        [a["recomm_id"] for a in answers] + [batch["recomm_id"]] + [r["recomm_id"] for r in batch["results"]]
    )
    assert len(set(ids)) == len(ids) == 8
    version = answers[0]["model_version"]
    assert all(i.endswith("." + version) for i in ids)
    served = {
        s: metric(client, "recserve_lists_served_total", version=version, strategy=s)
        for s in ("personalized", "popularity", "similar_items")
    }
    assert served == {"personalized": 4, "popularity": 2, "similar_items": 1}

    clicks = [
        event(10, recomm_id=answers[0]["recomm_id"], item_id=answers[0]["items"][0]["item_id"]),
        event(11, recomm_id=answers[2]["recomm_id"], user_id="stranger"),
        event(12, recomm_id=answers[3]["recomm_id"], type="like"),
        event(13, recomm_id="p0123456789abcdef.not-a-version-we-served"),
        event(14, recomm_id="made-up"),
    ]
    assert client.post("/feedback", json={"events": clicks}).status_code == 202
    credited = "recserve_feedback_credited_total"
    assert metric(client, credited, version=version, strategy="personalized", type="click") == 1
    assert metric(client, credited, version=version, strategy="popularity", type="click") == 1
    assert metric(client, credited, version=version, strategy="similar_items", type="like") == 1
    assert metric(client, credited, version="other", strategy="personalized", type="click") == 1
    assert metric(client, credited, version="other", strategy="unknown", type="click") == 1
