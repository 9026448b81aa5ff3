"""Both backends under one fixture: SQLite in a temporary directory, and PostgreSQL in a schema
of its own (``pg_schema_url`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import EventStore, open_event_store


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
