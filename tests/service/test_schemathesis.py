"""Schema-driven fuzzing: every operation in the service's own OpenAPI schema, every check.

All of Schemathesis' checks run (as ``st run --checks all``): no 5xx; status codes, content
types, headers and bodies as documented; schema-valid requests accepted and schema-invalid
ones refused; a 405 with an ``Allow`` header. Runs through the ASGI app in-process (no server,
no port); what only a real HTTP server can get wrong (the request-line limit) is covered by
``tests/service/test_url_limits.py``.

The app serves the session's published model before its schema is read: the schema names the
filter attributes the served model carries (requests naming others are refused), so it is
loaded from a fixture. Each test is self-contained: no test reads what another one counted.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks

from eventstore import open_event_store
from service.app import create_app
from service.settings import Settings

load_all_checks()
ALL_CHECKS = CHECKS.get_all()

# Random strings are almost never ids the model knows, which would leave the personalised path and
# real filters unfuzzed. These hooks swap about half of the generated ids and filter values for
# known ones (deterministically from the generated value, so Hypothesis can still shrink). Only
# values the schema allows are swapped (1..256 characters), so a schema-violating case stays one;
# attribute names need no swap: the schema lists the model's.
USERS = [f"u{i}" for i in range(0, 300, 23)]
ITEMS = [f"i{i}" for i in range(0, 200, 13)]
CATEGORIES = [f"cat{i}" for i in range(8)]


def _swap(value: object, pool: list[str]) -> object:
    if isinstance(value, str) and 0 < len(value) <= 256 and len(value) % 2 == 0:
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
                flt[side] = {a: _swap_list(v, CATEGORIES) for a, v in flt[side].items()}
        out["item_filter"] = flt
    return out


def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    return _known(body) if isinstance(body, dict) else body


# Id parameters are strings on the wire: a generated "invalid" non-string (false, 3, null) in one
# is sent as the text "false", "3" or "" and is then a valid id, so Schemathesis would flag the
# service for accepting what it actually received valid (seen: `recent_item_ids=false`). Such
# cases are dropped; every other invalid case still has to be refused.
ID_QUERY = ("user_id", "item_id", "user_ids", "exclude_item_ids", "recent_item_ids")


def _not_a_string(value: object) -> bool:
    return any(_not_a_string(v) for v in value) if isinstance(value, list) else not isinstance(value, str)


def filter_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> bool:
    return not (isinstance(query, dict) and any(_not_a_string(query[n]) for n in ID_QUERY if n in query))


def map_query(context: schemathesis.HookContext, query: dict[str, Any]) -> dict[str, Any]:
    return _known(query) if isinstance(query, dict) else query


# The schema is read at collection time, before fixtures exist: the session's model is loaded
# by the autouse fixture below. The one model-dependent part of the served schema, the filter
# attributes, is filled in here with what the synthetic model carries, and the fixture checks
# that the app then serves exactly the schema under test.
ATTRIBUTES = ["category"]
# POST /feedback writes to an event store of the run's own (migrated by the fixture below), so
# schema-valid events are stored (202) and nothing fails for want of a database.
EVENTS_DB = Path(tempfile.mkdtemp(prefix="recserve-schemathesis-")) / "events.db"
APP = create_app(
    Settings(
        store_uri="unset",
        max_k=60,
        max_batch_size=20,
        feedback_max_batch=20,
        database_url=f"sqlite:///{EVENTS_DB}",
        _env_file=None,
    )
)


def _as_served(openapi: dict[str, Any]) -> dict[str, Any]:
    served = json.loads(json.dumps(openapi))
    item_filter = served["components"]["schemas"]["ItemFilterModel"]["properties"]
    for side in ("include", "exclude"):
        item_filter[side]["propertyNames"]["enum"] = ATTRIBUTES
    return served


RAW = _as_served(APP.openapi())
schema = schemathesis.openapi.from_dict(RAW)
schema.app = APP  # requests go through the ASGI app in-process, as with from_asgi
schema.hook(map_body)
schema.hook(map_query)
schema.hook(filter_query)


@pytest.fixture(autouse=True, scope="module")
def _serve_published_model(published_store: Path) -> Iterator[None]:
    events = open_event_store(f"sqlite:///{EVENTS_DB}")
    events.upgrade()
    events.close()
    APP.state.holder.set_store_uri(str(published_store))
    assert APP.state.holder.load_current()
    assert json.loads(json.dumps(APP.openapi())) == RAW
    yield
    APP.state.feedback.close()
    shutil.rmtree(EVENTS_DB.parent, ignore_errors=True)


# 500 fuzzed examples per operation with parameters (`pytest tests/service/test_schemathesis.py
# --hypothesis-show-statistics` prints them), plus the coverage phase's boundary, negative and
# undeclared-method cases for every operation: a few thousand requests, ~40 s on 2 cores.
FUZZ = settings(max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@FUZZ
def test_openapi_conformance(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=ALL_CHECKS)


def test_generated_recommend_requests_reach_every_strategy() -> None:
    """The id-swapping hooks work: generated requests reach the personalised path, the
    recent-items cold start and the popularity fallback (else the fuzzing above would
    exercise little beyond the fallback)."""
    reached: set[str] = set()
    cases = 0

    @given(case=schema["/recommend"]["POST"].as_strategy())
    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        nonlocal cases
        cases += 1
        response = case.call()
        if response.status_code == 200:
            reached.add(response.json()["strategy"])

    run()
    print(f"{cases} generated POST /recommend cases reached {sorted(reached)}")
    assert reached == {"personalized", "recent_items", "popularity"}
