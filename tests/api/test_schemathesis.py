"""Schema-driven fuzzing: every operation in the service's own OpenAPI schema, generated cases.

Checks: no 5xx, every status code documented, content types and response bodies/headers as the
schema says. Runs through the ASGI app in-process (no server, no port).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.settings import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CALLS: dict[str, int] = {}
STRATEGIES: set[str] = set()


# The schema is read at collection time, before fixtures exist; the app is pointed at the
# session's published store (and loads it) by the autouse fixture below.
APP = create_app(Settings(store_uri="unset", max_k=60, max_batch_size=20, _env_file=None))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


# Random strings are almost never ids the model knows, which would leave the personalised path and
# real filters unfuzzed. These hooks swap about half of the generated ids/attribute names for known
# ones (deterministically from the generated value, so Hypothesis can still shrink).
USERS = [f"u{i}" for i in range(0, 300, 23)]
ITEMS = [f"i{i}" for i in range(0, 200, 13)]
CATEGORIES = [f"cat{i}" for i in range(8)]


def _swap(value: object, pool: list[str]) -> object:
    if isinstance(value, str) and value and len(value) % 2 == 0:
        return pool[len(value) % len(pool)]
    return value


def _swap_list(values: object, pool: list[str]) -> object:
    return [_swap(v, pool) for v in values] if isinstance(values, list) else values


def _known(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    if "user_id" in out:
        out["user_id"] = _swap(out["user_id"], USERS)
    if "item_id" in out:
        out["item_id"] = _swap(out["item_id"], ITEMS)
    for name, pool in (("user_ids", USERS), ("exclude_item_ids", ITEMS), ("recent_item_ids", ITEMS)):
        if name in out:
            out[name] = _swap_list(out[name], pool)
    flt = out.get("item_filter")
    if isinstance(flt, dict):
        flt = dict(flt)
        for side in ("include", "exclude"):
            if isinstance(flt.get(side), dict):
                flt[side] = {_swap(a, ["category"]): _swap_list(v, CATEGORIES) for a, v in flt[side].items()}
        out["item_filter"] = flt
    return out


@schema.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    return _known(body) if isinstance(body, dict) else body


@schema.hook
def map_query(context: schemathesis.HookContext, query: dict[str, Any]) -> dict[str, Any]:
    return _known(query) if isinstance(query, dict) else query


@pytest.fixture(autouse=True, scope="module")
def _serve_published_model(published_store: Path) -> None:
    APP.state.holder.set_store_uri(str(published_store))
    assert APP.state.holder.load_current()


@schema.parametrize()
@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_openapi_conformance(case: schemathesis.Case) -> None:
    response = case.call_and_validate(checks=CHECKS)
    key = f"{case.operation.method.upper()} {case.operation.path}"
    CALLS[key] = CALLS.get(key, 0) + 1
    if response.status_code == 200 and case.operation.path.startswith("/recommend"):
        for result in response.json().get("results", [response.json()]):
            STRATEGIES.add(result["strategy"])


def test_enough_cases_ran() -> None:
    print(f"schemathesis cases per operation: {CALLS}; strategies reached: {sorted(STRATEGIES)}")
    assert sum(CALLS.values()) >= 1000
    assert {"personalized", "recent_items", "popularity"} == STRATEGIES
