"""The one interface both backends implement, and :func:`open_event_store` to pick one by URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from eventstore.events import Appended, Event, EventStoreError, SchemaMissing, SchemaTooNew, StoredEvent
from eventstore.migrations import LATEST
from eventstore.rollup import DEFAULT_MAX_FOLD, HourlyCounts


class EventStore(Protocol):
    """Durable, deduplicated event log; the service appends, ``recserve retrain`` reads.

    * :meth:`append` returns only after the batch is committed (all or nothing);
    * :meth:`watermark` is a ``seq`` W such that every event with ``seq <= W`` is committed now
      and no event with ``seq <= W`` can appear later: the cut a retrain records;
    * :meth:`read` yields events with ``after < seq <= upto`` in ``seq`` order;
    * :meth:`retrain_lock` is held for a whole retrain; a second holder gets :class:`LockHeld`
      at once, and a holder that dies releases it (the kernel or the server does);
    * :meth:`hourly` folds new events into the hourly counts (each event counted once, at most
      ``max_fold`` per call) and reads hours ``first_hour..last_hour`` of them and of the lists
      :meth:`add_served` recorded (``eventstore/rollup.py``).
    """

    url: str  # for messages: the password, if any, is masked

    def append(self, events: Sequence[Event]) -> Appended: ...
    def watermark(self) -> int: ...
    def read(self, after: int = 0, upto: int | None = None) -> Iterator[StoredEvent]: ...
    def count(self, after: int = 0, upto: int | None = None) -> int: ...
    def retrain_lock(self) -> contextlib.AbstractContextManager[None]: ...
    def add_served(self, counts: Mapping[tuple[int, str], int]) -> None: ...
    def hourly(self, first_hour: int, last_hour: int, max_fold: int = DEFAULT_MAX_FOLD) -> HourlyCounts: ...
    def schema_version(self) -> int: ...
    def upgrade(self) -> tuple[int, int]: ...
    def close(self) -> None: ...


def check_schema(store: EventStore) -> None:
    """Raise :class:`SchemaMissing` / :class:`SchemaTooNew` unless the schema is this build's."""
    version = store.schema_version()
    if version < LATEST:
        raise SchemaMissing(
            f"{store.url}: event schema is at version {version}, this build needs {LATEST}: "
            f"run `recserve db upgrade --database-url {store.url}`"
        )
    if version > LATEST:
        raise SchemaTooNew(f"{store.url}: event schema version {version} is newer than this build's {LATEST}")


def redact(url: str) -> str:
    """The URL with its password masked (it ends up in logs and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def open_event_store(url: str) -> EventStore:
    """A store for ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://…``.

    Opening checks nothing and creates nothing (a SQLite file is created by ``upgrade`` only);
    the first operation connects.
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from eventstore.sqlite import SQLiteEventStore

        return SQLiteEventStore.from_url(url)
    if scheme in ("postgresql", "postgres"):
        from eventstore.postgres import PostgresEventStore

        return PostgresEventStore(url)
    raise EventStoreError(
        f"unsupported database URL {redact(url)!r}: expected sqlite:///PATH or postgresql://…"
    )


__all__ = ["EventStore", "check_schema", "open_event_store", "redact"]
