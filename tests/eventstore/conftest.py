"""Both backends under one fixture: SQLite in a temporary directory, and PostgreSQL at
127.0.0.1:5432 (database ``test``, trust auth, as ``root`` or ``postgres``) in a schema of its own,
created for the test and dropped afterwards. PostgreSQL tests are skipped, with the reason, only
when no server answers there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_support import PG_USERS, pg_admin_url, private_schema_url

from eventstore import EventStore, open_event_store


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = pg_admin_url()
    if url is None:
        pytest.skip(f"no PostgreSQL answers at 127.0.0.1:5432 (database test, users {PG_USERS})")
    return url


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped (with its tables) afterwards."""
    with private_schema_url(pg_url, f"recserve_test_{uuid.uuid4().hex[:12]}") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def fresh_store(database_url: str) -> Iterator[EventStore]:
    """A store with no schema yet."""
    store = open_event_store(database_url)
    yield store
    store.close()


@pytest.fixture
def event_store(fresh_store: EventStore) -> EventStore:
    """A store with the schema applied."""
    fresh_store.upgrade()
    return fresh_store
