"""What an event is, what storing a batch returns, and what can go wrong, for every backend."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One interaction as a client reported it.

    ``timestamp`` is when it happened (Unix seconds); ``event_id`` is the client's idempotency key
    (the same id twice is stored once; events without one are never deduplicated); ``recomm_id``
    names the served list the interaction came from; ``weight`` is kept for trainers that use it.
    """

    user_id: str
    item_id: str
    type: str
    timestamp: float
    event_id: str | None = None
    recomm_id: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class StoredEvent(Event):
    """An event as the store holds it: ``seq`` orders events by commit (the watermark's unit)."""

    seq: int = 0
    received_at: float = 0.0


@dataclass(frozen=True)
class Appended:
    """The outcome of one :meth:`EventStore.append`: per input event its ``seq``, or None when
    its ``event_id`` was already stored (a duplicate, stored once)."""

    seqs: tuple[int | None, ...]

    @property
    def accepted(self) -> int:
        return sum(s is not None for s in self.seqs)

    @property
    def duplicates(self) -> int:
        return sum(s is None for s in self.seqs)


class EventStoreError(Exception):
    """Base class: the event store cannot do what was asked (the message names the database)."""


class Unavailable(EventStoreError):
    """The database cannot be reached or refused the operation."""


class SchemaMissing(EventStoreError):
    """The database has no (or an older) event schema: run ``recserve db upgrade``."""


class SchemaTooNew(EventStoreError):
    """The database's schema is newer than this build knows: upgrade the code, not the schema."""


class LockHeld(EventStoreError):
    """Another process holds the retrain lock."""
