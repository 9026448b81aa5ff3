"""The event schema, as numbered migrations per dialect: ``recserve db upgrade`` applies the
missing ones in one transaction, and nothing creates tables on import or on connect.

Version 1: the ``events`` table. ``seq`` is the commit order (SQLite's single writer assigns it in
commit order; PostgreSQL's inserts take a shared advisory lock that the watermark read takes
exclusively, see ``eventstore/postgres.py``). ``event_id`` is UNIQUE and nullable: both databases
treat NULLs as distinct, so events without an id are never deduplicated. Times are Unix seconds
as double precision (what the API speaks, and what training sorts by).

Version 2: hourly rollups for the dashboard's feedback section (``eventstore/rollup.py``), so a
refresh reads a few hundred small rows instead of the event log:

* ``event_counts_hourly``: events per (hour of ``ts``, type, credited model version), folded in
  from ``events`` by ``seq`` (``event_rollup_state.folded_seq`` says how far);
* ``lists_served_hourly``: lists served per (hour, model version), added by each service process
  from its own counter (the impressions a click-through rate divides by).

Their primary keys lead with ``hour``: the window query is an index range scan of
hours × types × versions rows, whatever the size of ``events``. No backfill here: the first
fold after the upgrade catches up with the existing events, a bounded chunk per call.
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

_ROLLUP = [
    "CREATE TABLE event_counts_hourly (hour BIGINT NOT NULL, type TEXT NOT NULL, "
    "model_version TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (hour, type, model_version))",
    "CREATE TABLE lists_served_hourly (hour BIGINT NOT NULL, model_version TEXT NOT NULL, "
    "n BIGINT NOT NULL, PRIMARY KEY (hour, model_version))",
    "CREATE TABLE event_rollup_state (id INTEGER PRIMARY KEY CHECK (id = 1), folded_seq BIGINT NOT NULL)",
    "INSERT INTO event_rollup_state (id, folded_seq) VALUES (1, 0)",
]

MIGRATIONS: dict[str, list[list[str]]] = {
    "sqlite": [
        [
            # AUTOINCREMENT: a seq is never reused, so a watermark never covers a later event.
            f"CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, {_EVENT_COLUMNS})",
            "CREATE INDEX events_user ON events (user_id, seq)",
        ],
        _ROLLUP,
    ],
    "postgresql": [
        [
            f"CREATE TABLE events (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {_EVENT_COLUMNS})",
            "CREATE INDEX events_user ON events (user_id, seq)",
        ],
        _ROLLUP,
    ],
}

LATEST = len(MIGRATIONS["sqlite"])
assert len(MIGRATIONS["postgresql"]) == LATEST, "every migration exists for both dialects"

CREATE_SCHEMA_TABLE = f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER NOT NULL)"
