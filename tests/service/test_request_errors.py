"""Bad input → a 4xx in the one error shape naming the field; never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.limits import MAX_QUERY_IDS
from service.settings import Settings


@pytest.fixture(scope="module")
def api(published_store: Path) -> Iterator[TestClient]:
    settings = Settings(
        store_uri=str(published_store), max_batch_size=3, max_body_bytes=4096, max_k=50, _env_file=None
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _error(r, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    assert "Traceback" not in r.text
    return body["error"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"user_id": "u1", "k": 0}, "k"),
        ({"user_id": "u1", "k": "ten"}, "k"),
        ({"user_id": "u1", "k": True}, "k"),
        ({"user_id": "u1", "k": 2.5}, "k"),
        ({"user_id": "u1", "k": "3"}, "k"),
        ({"user_id": ""}, "user_id"),
        ({"k": 3}, "user_id"),
        ({"user_id": "u1", "colour": "red"}, "colour"),
        ({"user_id": "u1", "diversity": 1.5}, "diversity"),
        ({"user_id": "u1", "diversity": -0.1}, "diversity"),
        ({"user_id": "u1", "exclude_seen": "perhaps"}, "exclude_seen"),
        # strict JSON types: the schema says boolean / number, so 0, "true" and false are refused
        ({"user_id": "u1", "explain": 0}, "explain"),
        ({"user_id": "u1", "exclude_seen": "true"}, "exclude_seen"),
        ({"user_id": "u1", "diversity": False}, "diversity"),
        ({"user_id": "u1", "exclude_item_ids": "i1"}, "exclude_item_ids"),
        ({"user_id": "u1", "exclude_item_ids": ["i1", 7]}, "exclude_item_ids.1"),
        ({"user_id": "u1", "item_filter": {"include": {"category": "cat1"}}}, "item_filter.include.category"),
        ({"user_id": "u1", "item_filter": {"only": {}}}, "item_filter.only"),
        ({"user_id": "u1", "recent_item_ids": ["x"] * 201}, "recent_item_ids"),
    ],
)
def test_validation_errors_name_the_field(api: TestClient, payload: dict, field: str) -> None:
    err = _error(api.post("/recommend", json=payload), 422)
    assert err["code"] == "validation_error"
    assert err["field"] == field
    assert err["message"].startswith(field)


def test_an_integral_json_number_is_an_integer_k(api: TestClient) -> None:
    """JSON Schema's "integer" takes 3.0, so the service does too (but not 2.5, above)."""
    for r in (
        api.post("/recommend", json={"user_id": "u1", "k": 3.0}),
        api.post("/similar-items", json={"item_id": "i1", "k": 3.0}),
    ):
        assert r.status_code == 200 and len(r.json()["items"]) == 3
    batch = api.post("/recommend/batch", json={"user_ids": ["u1"], "k": 3.0})
    assert batch.status_code == 200 and len(batch.json()["results"][0]["items"]) == 3
    assert _error(api.post("/recommend", json={"user_id": "u1", "k": 51.0}), 422)["field"] == "k"


def test_k_above_max_k_says_the_limit(api: TestClient) -> None:
    for r in (
        api.get("/recommend", params={"user_id": "u1", "k": 51}),
        api.post("/recommend", json={"user_id": "u1", "k": 51}),
        api.post("/recommend/batch", json={"user_ids": ["u1"], "k": 51}),
        api.get("/similar-items", params={"item_id": "i1", "k": 51}),
    ):
        err = _error(r, 422)
        assert err["field"] == "k" and "50" in err["message"]
    assert api.get("/recommend", params={"user_id": "u1", "k": 50}).status_code == 200


def test_nan_and_infinity_are_rejected(api: TestClient) -> None:
    for raw in (b'{"user_id": "u1", "diversity": NaN}', b'{"user_id": "u1", "diversity": Infinity}'):
        r = api.post("/recommend", content=raw, headers={"content-type": "application/json"})
        assert _error(r, 422)["field"] == "diversity"
    assert (
        _error(api.get("/recommend", params={"user_id": "u1", "diversity": "nan"}), 422)["field"]
        == "diversity"
    )


def test_malformed_json_and_missing_body(api: TestClient) -> None:
    r = api.post("/recommend", content=b'{"user_id": ', headers={"content-type": "application/json"})
    err = _error(r, 422)
    assert err["field"] is None and "not valid JSON" in err["message"]
    assert _error(api.post("/recommend"), 422)["code"] == "validation_error"
    assert _error(api.post("/recommend", json=[1, 2]), 422)["field"] is None


def test_unknown_filter_attribute_names_it(api: TestClient) -> None:
    r = api.post("/recommend", json={"user_id": "u1", "item_filter": {"exclude": {"genre": ["rock"]}}})
    err = _error(r, 422)
    assert err["code"] == "unknown_attribute"
    assert err["field"] == "item_filter.exclude.genre"
    assert "category" in err["message"]
    r = api.post("/similar-items", json={"item_id": "i1", "item_filter": {"include": {"genre": ["rock"]}}})
    assert _error(r, 422)["field"] == "item_filter.include.genre"


def test_unknown_item_is_404_naming_it(api: TestClient) -> None:
    for r in (
        api.get("/similar-items", params={"item_id": "no-such-item"}),
        api.post("/similar-items", json={"item_id": "no-such-item", "k": 3}),
    ):
        err = _error(r, 404)
        assert err["code"] == "unknown_item" and err["field"] == "item_id"
        assert "no-such-item" in err["message"]


def test_batch_size_limit(api: TestClient) -> None:
    err = _error(api.post("/recommend/batch", json={"user_ids": ["u1", "u2", "u3", "u4"]}), 422)
    assert err["field"] == "user_ids" and "at most 3" in err["message"]
    assert _error(api.post("/recommend/batch", json={"user_ids": []}), 422)["field"] == "user_ids"
    assert api.post("/recommend/batch", json={"user_ids": ["u1", "u2", "u3"]}).status_code == 200


def test_body_size_limit(api: TestClient) -> None:
    big = {"user_id": "u1", "exclude_item_ids": [f"item-{i:06d}" for i in range(600)]}
    err = _error(api.post("/recommend", json=big), 413)
    assert err["code"] == "body_too_large" and "4096" in err["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        yield b'{"user_id": "u1", "exclude_item_ids": ['
        for i in range(600):
            yield b'"item-%06d",' % i
        yield b'"x"]}'

    r = api.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert _error(r, 413)["code"] == "body_too_large"

    def small() -> Iterator[bytes]:
        yield b'{"user_id": "u1", '
        yield b'"k": 3}'

    r = api.post("/recommend", content=small(), headers={"content-type": "application/json"})
    assert r.status_code == 200 and len(r.json()["items"]) == 3


def test_query_list_limits(api: TestClient) -> None:
    """Query strings carry at most MAX_QUERY_IDS ids per list (a URL has a length limit; the POST
    body takes up to 1000)."""
    ids = [f"x{i}" for i in range(MAX_QUERY_IDS + 1)]
    for params, field in (
        ({"user_id": "u1", "exclude_item_ids": ids}, "exclude_item_ids"),
        ({"user_id": "u1", "recent_item_ids": ids}, "recent_item_ids"),
    ):
        err = _error(api.get("/recommend", params=params), 422)
        assert err["field"] == field and str(MAX_QUERY_IDS) in err["message"]
    err = _error(api.get("/similar-items", params={"item_id": "i1", "exclude_item_ids": ids}), 422)
    assert err["field"] == "exclude_item_ids"
    assert api.get("/recommend", params={"user_id": "u1", "exclude_item_ids": ids[:-1]}).status_code == 200


def test_unexpected_error_is_a_500_in_the_error_shape_without_traceback(published_store: Path) -> None:
    app = create_app(Settings(store_uri=str(published_store), _env_file=None))

    def broken(*_: object) -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as c:
        app.state.serving.recommend = broken
        app.state.serving.recommend_steps = broken  # what a micro-batch calls
        r = c.get("/recommend", params={"user_id": "u1"})
    err = _error(r, 500)
    assert err["code"] == "internal_error" and "secret" not in r.text


def test_unknown_route_and_method(api: TestClient) -> None:
    assert _error(api.get("/nope"), 404)["code"] == "not_found"
    assert _error(api.delete("/recommend"), 405)["code"] == "method_not_allowed"


def test_a_405_names_every_method_the_path_serves(api: TestClient) -> None:
    """RFC 9110: a 405 carries ``Allow``; /recommend's GET and POST are two routes, both listed."""
    for method, path, allow in (
        ("DELETE", "/recommend", "GET, POST"),
        ("TRACE", "/similar-items", "GET, POST"),
        ("OPTIONS", "/recommend/batch", "POST"),
        ("PUT", "/healthz", "GET"),
    ):
        r = api.request(method, path)
        assert _error(r, 405)["code"] == "method_not_allowed"
        assert r.headers["allow"] == allow


def test_no_model_is_503(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(store_uri=str(tmp_path / "empty"), _env_file=None))) as c:
        assert _error(c.get("/recommend", params={"user_id": "u1"}), 503)["code"] == "no_model"
        assert _error(c.post("/recommend/batch", json={"user_ids": ["u1"]}), 503)["code"] == "no_model"


def test_openapi_names_the_filter_attributes_the_model_accepts(api: TestClient) -> None:
    """A filter naming another attribute is refused (above), so the schema lists the accepted ones."""
    flt = api.get("/openapi.json").json()["components"]["schemas"]["ItemFilterModel"]["properties"]
    assert flt["include"]["propertyNames"]["enum"] == flt["exclude"]["propertyNames"]["enum"] == ["category"]


def test_openapi_documents_configured_limits(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    comp = schema["components"]["schemas"]
    k_branch = next(b for b in comp["RecommendRequest"]["properties"]["k"]["anyOf"] if b["type"] == "integer")
    assert k_branch["maximum"] == 50
    ids = comp["BatchRecommendRequest"]["properties"]["user_ids"]
    assert ids["maxItems"] == 3
    params = schema["paths"]["/recommend"]["get"]["parameters"]
    k_param = next(p for p in params if p["name"] == "k")
    assert any(b.get("maximum") == 50 for b in k_param["schema"].get("anyOf", [k_param["schema"]]))
