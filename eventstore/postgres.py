"""The server backend: PostgreSQL through psycopg 3 and its connection pool.

Durability: :meth:`append` returns after ``COMMIT`` (``synchronous_commit`` as the server has it;
its default, ``on``, waits for the WAL flush). Tables live in the connection's current schema
(``search_path``: ``?options=-csearch_path%3Dmyschema`` in the URL picks another).

Watermark: an identity column hands out ``seq`` values in ``nextval`` order, not commit order, so
``MAX(seq)`` alone could cover an insert still in flight (seq 7 visible, seq 6 committing later).
Every insert transaction therefore takes a *shared* transaction-level advisory lock before
``nextval``; :meth:`watermark` takes the same key *exclusively*, which waits for the inserts in
flight and lets none start, then reads ``MAX(seq)``: every smaller seq is committed or gone. The
key is derived from the schema, so stores in different schemas never wait on each other. The
retrain lock is a session-level advisory lock on its own connection: the server releases it when
that connection ends, however the holder died.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from eventstore.events import Appended, Event, LockHeld, SchemaMissing, StoredEvent, Unavailable
from eventstore.migrations import CREATE_SCHEMA_TABLE, LATEST, MIGRATIONS, SCHEMA_TABLE
from eventstore.rollup import (
    DEFAULT_MAX_FOLD,
    POSTGRES_HOUR,
    POSTGRES_VERSION,
    FoldSQL,
    HourlyCounts,
    add_served_sql,
    fold_and_read,
)
from eventstore.store import redact

_INSERT = (
    "INSERT INTO events (event_id, user_id, item_id, type, ts, received_at, recomm_id, weight) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING seq"
)
_ROLLUP = FoldSQL.of(POSTGRES_HOUR, POSTGRES_VERSION, "%s")
_ADD_SERVED = add_served_sql("%s")
_COLUMNS = "seq, event_id, user_id, item_id, type, ts, received_at, recomm_id, weight"


def _key(schema: str, purpose: str) -> int:
    """A signed 64-bit advisory-lock key for ``purpose`` in ``schema``."""
    digest = hashlib.blake2b(f"recserve:{schema}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresEventStore:
    def __init__(self, url: str, max_size: int = 4, timeout_s: float = 5.0) -> None:
        self.conninfo = url
        self.url = redact(url)
        self.max_size = max_size
        self.timeout_s = timeout_s
        self._pool: ConnectionPool | None = None
        self._schema: str | None = None

    # -- connections -----------------------------------------------------------------------------
    def _get_pool(self) -> ConnectionPool:
        if self._pool is None:
            pool = ConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self.max_size,
                open=False,
                timeout=self.timeout_s,
                check=ConnectionPool.check_connection,  # a restarted server costs no failed request
                kwargs={"connect_timeout": max(1, round(self.timeout_s))},
                name="recserve-events",
            )
            try:
                pool.open(wait=True, timeout=self.timeout_s)
            except PoolTimeout as exc:
                pool.close()
                raise Unavailable(f"{self.url}: cannot connect within {self.timeout_s:g} s") from exc
            self._pool = pool
        return self._pool

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction: committed when the block ends, rolled back on an error."""
        try:
            with self._get_pool().connection() as conn, conn.cursor() as cur:
                yield cur
        except psycopg.errors.UndefinedTable as exc:
            raise SchemaMissing(
                f"{self.url}: {exc.diag.message_primary}: run `recserve db upgrade --database-url {self.url}`"
            ) from exc
        except (psycopg.Error, PoolTimeout) as exc:
            raise Unavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc

    def _schema_name(self, cur: psycopg.Cursor[Any]) -> str:
        if self._schema is None:
            row = cur.execute("SELECT current_schema()").fetchone()
            if row is None or row[0] is None:
                raise Unavailable(f"{self.url}: no schema to use (check search_path in the URL's options)")
            self._schema = str(row[0])
        return self._schema

    # -- schema ----------------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._transaction() as cur:
            if cur.execute("SELECT to_regclass(%s)", (SCHEMA_TABLE,)).fetchone()[0] is None:
                return 0
            return int(cur.execute(f"SELECT COALESCE(MAX(version), 0) FROM {SCHEMA_TABLE}").fetchone()[0])

    def upgrade(self) -> tuple[int, int]:
        """Apply the missing migrations in one transaction (concurrent upgrades wait their turn)."""
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_key(self._schema_name(cur), "migrate"),))
            cur.execute(CREATE_SCHEMA_TABLE)
            before = int(cur.execute(f"SELECT COALESCE(MAX(version), 0) FROM {SCHEMA_TABLE}").fetchone()[0])
            for version in range(before + 1, LATEST + 1):
                for statement in MIGRATIONS["postgresql"][version - 1]:
                    cur.execute(statement)
                cur.execute(f"INSERT INTO {SCHEMA_TABLE} (version) VALUES (%s)", (version,))
            return before, max(before, LATEST)

    # -- events ----------------------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> Appended:
        if not events:
            return Appended(())
        now = time.time()
        rows = [
            (e.event_id, e.user_id, e.item_id, e.type, e.timestamp, now, e.recomm_id, e.weight)
            for e in events
        ]
        seqs: list[int | None] = []
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_key(self._schema_name(cur), "ingest"),))
            cur.executemany(_INSERT, rows, returning=True)  # one round trip (pipeline mode)
            while True:
                row = cur.fetchone()
                seqs.append(None if row is None else int(row[0]))
                if not cur.nextset():
                    break
        return Appended(tuple(seqs))

    def watermark(self) -> int:
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_key(self._schema_name(cur), "ingest"),))
            return int(cur.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def read(self, after: int = 0, upto: int | None = None, batch: int = 10_000) -> Iterator[StoredEvent]:
        upto = self.watermark() if upto is None else upto
        last = after
        while True:
            with self._transaction() as cur:
                rows = cur.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s",
                    (last, upto, batch),
                ).fetchall()
            if not rows:
                return
            for seq, event_id, user_id, item_id, type_, ts, received_at, recomm_id, weight in rows:
                yield StoredEvent(user_id, item_id, type_, ts, event_id, recomm_id, weight, seq, received_at)
            last = rows[-1][0]

    def count(self, after: int = 0, upto: int | None = None) -> int:
        with self._transaction() as cur:
            if upto is None:
                return int(cur.execute("SELECT COUNT(*) FROM events WHERE seq > %s", (after,)).fetchone()[0])
            q = "SELECT COUNT(*) FROM events WHERE seq > %s AND seq <= %s"
            return int(cur.execute(q, (after, upto)).fetchone()[0])

    # -- hourly rollups (eventstore/rollup.py) -------------------------------------------------
    def add_served(self, counts: Mapping[tuple[int, str], int]) -> None:
        """Add ``{(hour, model_version): lists}`` to the served-lists counts. Rows in key order,
        so two replicas adding at once wait for each other instead of deadlocking."""
        rows = [(hour, version, n) for (hour, version), n in sorted(counts.items()) if n]
        if not rows:
            return
        with self._transaction() as cur:
            cur.executemany(_ADD_SERVED, rows)

    def hourly(self, first_hour: int, last_hour: int, max_fold: int = DEFAULT_MAX_FOLD) -> HourlyCounts:
        """Fold at most ``max_fold`` new events into the hourly counts, then read the window.

        The watermark is taken in its own short transaction (it holds the ingest lock
        exclusively, which must not last a fold); the fold locks the state row ``FOR UPDATE``, so
        concurrent folds (other replicas' refreshes) run one after the other and count each event
        once. Appends are not blocked: a fold only reads ``events``."""
        watermark = self.watermark()
        with self._transaction() as cur:
            row = cur.execute("SELECT folded_seq FROM event_rollup_state FOR UPDATE").fetchone()
            folded = int(row[0])
            return fold_and_read(cur, _ROLLUP, folded, watermark, first_hour, last_hour, max_fold)

    @contextlib.contextmanager
    def retrain_lock(self) -> Iterator[None]:
        try:
            conn = psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=max(1, round(self.timeout_s))
            )
        except psycopg.Error as exc:
            raise Unavailable(f"{self.url}: {exc}") from exc
        with conn:
            schema = conn.execute("SELECT current_schema()").fetchone()[0] or "public"
            key = _key(schema, "retrain")
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                raise LockHeld(f"{self.url}: another retrain holds the advisory lock of schema {schema}")
            try:
                yield
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
