"""The event schema, as numbered migrations per dialect: ``recserve db upgrade`` applies the
missing ones in one transaction, and nothing creates tables on import or on connect.

Version 1: the ``events`` table. ``seq`` is the commit order (SQLite's single writer assigns it in
commit order; PostgreSQL's inserts take a shared advisory lock that the watermark read takes
exclusively, see ``eventstore/postgres.py``). ``event_id`` is UNIQUE and nullable: both databases
treat NULLs as distinct, so events without an id are never deduplicated. Times are Unix seconds
as double precision (what the API speaks, and what training sorts by).
"""

from __future__ import annotations

SCHEMA_TABLE = "recserve_event_schema"

_EVENT_COLUMNS = """
    event_id    TEXT UNIQUE,
    user_id     TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    type        TEXT NOT NULL,
    ts          DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    recomm_id   TEXT,
    weight      DOUBLE PRECISION NOT NULL
"""

MIGRATIONS: dict[str, list[list[str]]] = {
    "sqlite": [
        [
            # AUTOINCREMENT: a seq is never reused, so a watermark never covers a later event.
            f"CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, {_EVENT_COLUMNS})",
            "CREATE INDEX events_user ON events (user_id, seq)",
        ],
    ],
    "postgresql": [
        [
            f"CREATE TABLE events (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {_EVENT_COLUMNS})",
            "CREATE INDEX events_user ON events (user_id, seq)",
        ],
    ],
}

LATEST = len(MIGRATIONS["sqlite"])
assert len(MIGRATIONS["postgresql"]) == LATEST, "every migration exists for both dialects"

CREATE_SCHEMA_TABLE = f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER NOT NULL)"
