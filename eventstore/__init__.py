"""The event log of the feedback loop: the service appends, ``recserve retrain`` reads.

Shared by both sides, so it imports neither ``service`` nor ``training`` (an import-linter
contract in ``pyproject.toml``). One interface (:class:`EventStore`), two backends:

==============  ==============================================================================
``sqlite``      embedded default, ``sqlite:///var/events.db``: stdlib ``sqlite3``, WAL + FULL sync
``postgres``    ``postgresql://…``: psycopg 3 with ``psycopg_pool``
==============  ==============================================================================

The schema comes from ``recserve db upgrade`` (``migrations.py``), never from an import or a
connect. ``tests/eventstore/`` runs one contract suite against both.
"""

from eventstore.events import (
    Appended,
    Event,
    EventStoreError,
    LockHeld,
    SchemaMissing,
    SchemaTooNew,
    StoredEvent,
    Unavailable,
)
from eventstore.migrations import LATEST as SCHEMA_VERSION
from eventstore.rollup import NO_RECOMM_ID, UNRECOGNISED, HourlyCounts, hour_of
from eventstore.store import EventStore, check_schema, open_event_store, redact

__all__ = [
    "NO_RECOMM_ID",
    "SCHEMA_VERSION",
    "UNRECOGNISED",
    "Appended",
    "Event",
    "EventStore",
    "EventStoreError",
    "HourlyCounts",
    "LockHeld",
    "SchemaMissing",
    "SchemaTooNew",
    "StoredEvent",
    "Unavailable",
    "check_schema",
    "hour_of",
    "open_event_store",
    "redact",
]
