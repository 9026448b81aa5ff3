"""An app serving the session's small model with an event store of its own (SQLite on tmp)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eventstore import EventStore, open_event_store
from service.app import create_app
from service.settings import Settings


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = open_event_store(url)
    store.upgrade()
    store.close()
    return url


@pytest.fixture
def events(database_url: str) -> Iterator[EventStore]:
    """The test's event store, read back directly."""
    store = open_event_store(database_url)
    yield store
    store.close()


@pytest.fixture
def make_client(published_store: Path, database_url: str) -> Iterator[Callable[..., TestClient]]:
    """A started client of a fresh app; keyword arguments override settings."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = {"store_uri": str(published_store), "database_url": database_url, "_env_file": None}
        settings.update(overrides)
        client = TestClient(create_app(Settings(**settings)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(cache_size=0)
