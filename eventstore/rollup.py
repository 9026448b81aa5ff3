"""Hourly counts of events and of served lists: what the dashboard's feedback section reads.

Why a rollup and not a ``GROUP BY`` over ``events`` per refresh: the cost of the latter grows with
the events in the window (all of them, at a busy hour), the rollup's with hours × types ×
versions (48 × 5 × a few = a few hundred rows). Two tables (schema version 2):

* ``event_counts_hourly (hour, type, model_version, n)`` is *folded* from ``events`` by ``seq``:
  each :meth:`~eventstore.store.EventStore.hourly` call first adds the events with
  ``folded_seq < seq <= watermark`` (at most ``max_fold`` of them, so a call after a long pause
  or right after the upgrade costs a bounded chunk and the next call continues), in the same
  transaction that advances ``folded_seq``: an event is counted exactly once, however many
  replicas refresh at once (SQLite: one writer; PostgreSQL: the state row is locked
  ``FOR UPDATE``). Nothing is written on the ``/feedback`` path.
* ``lists_served_hourly (hour, model_version, n)`` gets additive upserts from every service
  process (:meth:`~eventstore.store.EventStore.add_served`).

``hour`` is ``floor(ts / 3600)``: Unix hours of the event's own timestamp (UTC hour buckets).
``model_version`` is what the event's ``recomm_id`` credits: the text after the first dot of an
id in recserve's format (one letter, 16 hex digits, a dot, the version; ``service/recomm.py``
makes them), :data:`NO_RECOMM_ID` when the event has none and :data:`UNRECOGNISED` when it has
one in another format. The format check is a pattern in SQL, so the store needs no lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HOUR_S = 3600
NO_RECOMM_ID = ""
UNRECOGNISED = "?"
DEFAULT_MAX_FOLD = 50_000

# recomm_id = <letter><16 hex>.<version>: the version starts at character 19 (1-based, as SQL's substr)
VERSION_AT = 19
SQLITE_RECOMM_GLOB = "[a-z]" + "[0-9a-f]" * 16 + ".?*"
POSTGRES_RECOMM_REGEX = r"^[a-z][0-9a-f]{16}\..+"

SQLITE_HOUR = "(CAST(ts / 3600 AS INTEGER) - (ts < 0 AND CAST(ts / 3600 AS INTEGER) * 3600.0 <> ts))"
SQLITE_VERSION = (
    f"CASE WHEN recomm_id IS NULL THEN '{NO_RECOMM_ID}' "
    f"WHEN recomm_id GLOB '{SQLITE_RECOMM_GLOB}' THEN substr(recomm_id, {VERSION_AT}) "
    f"ELSE '{UNRECOGNISED}' END"
)
POSTGRES_HOUR = "floor(ts / 3600)::bigint"
POSTGRES_VERSION = (
    f"CASE WHEN recomm_id IS NULL THEN '{NO_RECOMM_ID}' "
    f"WHEN recomm_id ~ '{POSTGRES_RECOMM_REGEX}' THEN substr(recomm_id, {VERSION_AT}) "
    f"ELSE '{UNRECOGNISED}' END"
)


def fold_sql(hour: str, version: str, placeholder: str) -> str:
    """The statement adding events ``after < seq <= upto`` to the hourly counts (one dialect)."""
    p = placeholder
    return (
        "INSERT INTO event_counts_hourly (hour, type, model_version, n) "
        f"SELECT {hour}, type, {version}, COUNT(*) FROM events WHERE seq > {p} AND seq <= {p} "
        "GROUP BY 1, 2, 3 "
        "ON CONFLICT (hour, type, model_version) DO UPDATE SET n = event_counts_hourly.n + excluded.n"
    )


def add_served_sql(placeholder: str) -> str:
    p = placeholder
    return (
        f"INSERT INTO lists_served_hourly (hour, model_version, n) VALUES ({p}, {p}, {p}) "
        "ON CONFLICT (hour, model_version) DO UPDATE SET n = lists_served_hourly.n + excluded.n"
    )


def chunk_end_sql(placeholder: str) -> str:
    """The ``seq`` of the ``max_fold``-th event after ``folded_seq`` (none: fold up to the watermark)."""
    p = placeholder
    return f"SELECT seq FROM events WHERE seq > {p} AND seq <= {p} ORDER BY seq LIMIT 1 OFFSET {p}"


def window_sql(placeholder: str) -> tuple[str, str]:
    p = placeholder
    return (
        f"SELECT hour, type, model_version, n FROM event_counts_hourly WHERE hour >= {p} AND hour <= {p}",
        f"SELECT hour, model_version, n FROM lists_served_hourly WHERE hour >= {p} AND hour <= {p}",
    )


@dataclass(frozen=True)
class FoldSQL:
    """One dialect's statements for :func:`fold_and_read` (the SQL above, with its placeholder)."""

    chunk_end: str
    fold: str
    set_folded: str
    window_events: str
    window_served: str

    @classmethod
    def of(cls, hour: str, version: str, placeholder: str) -> FoldSQL:
        window_events, window_served = window_sql(placeholder)
        return cls(
            chunk_end_sql(placeholder),
            fold_sql(hour, version, placeholder),
            f"UPDATE event_rollup_state SET folded_seq = {placeholder}",
            window_events,
            window_served,
        )


def fold_and_read(
    db: Any, sql: FoldSQL, folded: int, watermark: int, first_hour: int, last_hour: int, max_fold: int
) -> HourlyCounts:
    """Fold at most ``max_fold`` events after ``folded`` (up to ``watermark``) into the hourly
    counts, then read hours ``first_hour..last_hour``; ``db`` is a DB-API cursor or SQLite
    connection inside the caller's transaction, which holds the state row (the backends say how).

    The returned watermark is at least the fold point: another replica may have folded past the
    caller's watermark meanwhile (PostgreSQL reads it before its transaction).
    """
    if watermark > folded:
        end = db.execute(sql.chunk_end, (folded, watermark, max_fold - 1)).fetchone()
        upto = watermark if end is None else int(end[0])
        db.execute(sql.fold, (folded, upto))
        db.execute(sql.set_folded, (upto,))
        folded = upto
    events = db.execute(sql.window_events, (first_hour, last_hour)).fetchall()
    served = db.execute(sql.window_served, (first_hour, last_hour)).fetchall()
    return HourlyCounts(
        first_hour,
        last_hour,
        tuple((int(h), t, v, int(n)) for h, t, v, n in events),
        tuple((int(h), v, int(n)) for h, v, n in served),
        folded,
        max(watermark, folded),
    )


def hour_of(timestamp: float) -> int:
    """The hour bucket of a Unix timestamp, as the SQL above computes it."""
    return int(timestamp // HOUR_S)


@dataclass(frozen=True)
class HourlyCounts:
    """The rollup rows of hours ``first_hour..last_hour`` (inclusive), read in one transaction.

    ``events``: ``(hour, type, model_version, n)``; ``served``: ``(hour, model_version, n)``.
    Every event with ``seq <= folded_seq`` is in ``events``, none after it; ``watermark`` was
    the newest committed ``seq`` when read (``folded_seq < watermark``: still catching up).
    """

    first_hour: int
    last_hour: int
    events: tuple[tuple[int, str, str, int], ...]
    served: tuple[tuple[int, str, int], ...]
    folded_seq: int
    watermark: int

    @property
    def catching_up(self) -> bool:
        return self.folded_seq < self.watermark
