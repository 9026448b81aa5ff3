"""The plain-GET fast path (service/fastget.py): same queries as FastAPI's parsing, FastAPI's path
for everything it cannot check exactly, and the same answers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from service.exceptions import KTooLarge
from service.fastget import recommend_query, similar_query, split_query
from service.queries import RecommendQuery, SimilarQuery
from service.settings import Settings


def _request(qs: bytes, keys: bool = False, tracing: bool = False) -> SimpleNamespace:
    state = SimpleNamespace(
        api_keys=SimpleNamespace(enabled=keys),
        tracing=SimpleNamespace(enabled=tracing),
        settings=Settings(_env_file=None, max_k=50),
    )
    return SimpleNamespace(scope={"query_string": qs}, app=SimpleNamespace(state=state))


@pytest.mark.parametrize(
    ("qs", "expected"),
    [
        (b"user_id=u1", RecommendQuery("u1", 10)),
        (b"user_id=u1&k=7", RecommendQuery("u1", 7)),
        (
            b"k=3&user_id=a.b-c&exclude_seen=false&explain=TRUE&diversity=0.25",
            RecommendQuery("a.b-c", 3, exclude_seen=False, explain=True, diversity=0.25),
        ),
        (
            b"user_id=u1&exclude_item_ids=i1&exclude_item_ids=i2&recent_item_ids=i3",
            RecommendQuery("u1", 10, exclude_item_ids=("i1", "i2"), recent_item_ids=("i3",)),
        ),
        (b"user_id=u1&diversity=1", RecommendQuery("u1", 10, diversity=1.0)),
    ],
)
def test_plain_recommend_queries_are_parsed(qs: bytes, expected: RecommendQuery) -> None:
    assert recommend_query(_request(qs)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "qs",
    [
        b"",
        b"user_id=",
        b"user_id=u%201",  # escapes, "+", non-ASCII: FastAPI decodes them
        b"user_id=u+1",
        "user_id=ü".encode(),
        b"user_id=u1&k=0",
        b"user_id=u1&k=07",
        b"user_id=u1&k=-1",
        b"user_id=u1&k=1.0",
        b"user_id=u1&user_id=u2",  # repeated scalar
        b"user_id=u1&other=1",  # unknown parameter
        b"user_id=u1&exclude_seen=maybe",
        b"user_id=u1&diversity=1.5",
        b"user_id=u1&diversity=.5",
        b"user_id=u1&diversity=nan",
        b"user_id=" + b"x" * 257,
        b"user_id=u1" + b"&exclude_item_ids=i" * 11,
        b"user_id=u1&k",
    ],
)
def test_anything_unusual_takes_fastapis_path(qs: bytes) -> None:
    assert recommend_query(_request(qs)) is None  # type: ignore[arg-type]


def test_keys_or_tracing_take_fastapis_path() -> None:
    assert recommend_query(_request(b"user_id=u1", keys=True)) is None  # type: ignore[arg-type]
    assert similar_query(_request(b"item_id=i1", tracing=True)) is None  # type: ignore[arg-type]


def test_k_over_max_k_is_the_same_domain_error() -> None:
    with pytest.raises(KTooLarge):
        recommend_query(_request(b"user_id=u1&k=51"))  # type: ignore[arg-type]


def test_similar_queries() -> None:
    assert similar_query(_request(b"item_id=i1&k=5&exclude_item_ids=i2")) == SimilarQuery(  # type: ignore[arg-type]
        "i1", 5, ("i2",)
    )
    assert similar_query(_request(b"item_id=i1&user_id=u1")) is None  # type: ignore[arg-type]


def test_split_query_keeps_list_order() -> None:
    got = split_query(b"a=1&l=x&l=y", frozenset({"a"}), frozenset({"l"}))
    assert got == {"a": b"1", "l": ["x", "y"]}


def _strip(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("recomm_id", "source")}  # 2nd: a cache hit


def test_fast_and_fastapi_paths_answer_the_same(client: TestClient) -> None:
    """The same request through both paths (FastAPI's forced by an escaped, equal id)."""
    examples = client.get("/dashboard/api/examples").json()
    user, item = examples["users"][0], examples["items"][0]
    escaped_user = "".join(f"%{b:02X}" for b in user.encode())
    escaped_item = "".join(f"%{b:02X}" for b in item.encode())
    for fast, full in [
        (f"/recommend?user_id={user}&k=5", f"/recommend?user_id={escaped_user}&k=5"),
        (
            f"/recommend?user_id={user}&k=3&explain=true&exclude_item_ids={item}",
            f"/recommend?user_id={escaped_user}&k=3&explain=true&exclude_item_ids={item}",
        ),
        (f"/similar-items?item_id={item}&k=4", f"/similar-items?item_id={escaped_item}&k=4"),
    ]:
        a, b = client.get(fast), client.get(full)
        assert a.status_code == b.status_code == 200
        assert _strip(a.json()) == _strip(b.json())
        assert a.headers["x-model-version"] == b.headers["x-model-version"]


def test_fast_path_errors_are_the_usual_ones(client: TestClient) -> None:
    r = client.get("/recommend?user_id=u1&k=100000")
    assert r.status_code == 422 and r.json()["error"]["field"] == "k"
    r = client.get("/similar-items?item_id=no-such-item")
    assert r.status_code == 404
