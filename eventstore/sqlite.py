"""The embedded backend: one SQLite file (stdlib ``sqlite3``), so a bare machine needs no server.

Durability: WAL journal with ``synchronous=FULL``, so a commit has reached the disk (the WAL is
fsynced) before :meth:`append` returns, and the API answers 202 only after that. SQLite has one
writer at a time, so ``seq`` is assigned in commit order and ``MAX(seq)`` is a valid watermark.
One connection per store, used under a lock (``check_same_thread=False``): writes are serialised
by SQLite anyway, and the service calls in from its thread pool.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from eventstore.events import Appended, Event, LockHeld, SchemaMissing, StoredEvent, Unavailable
from eventstore.migrations import CREATE_SCHEMA_TABLE, LATEST, MIGRATIONS, SCHEMA_TABLE
from eventstore.rollup import (
    DEFAULT_MAX_FOLD,
    SQLITE_HOUR,
    SQLITE_VERSION,
    FoldSQL,
    HourlyCounts,
    add_served_sql,
    fold_and_read,
)

_INSERT = (
    "INSERT INTO events (event_id, user_id, item_id, type, ts, received_at, recomm_id, weight) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING seq"
)
_ROLLUP = FoldSQL.of(SQLITE_HOUR, SQLITE_VERSION, "?")
_ADD_SERVED = add_served_sql("?")
_COLUMNS = "seq, event_id, user_id, item_id, type, ts, received_at, recomm_id, weight"


def _row(r: tuple) -> StoredEvent:
    seq, event_id, user_id, item_id, type_, ts, received_at, recomm_id, weight = r
    return StoredEvent(user_id, item_id, type_, ts, event_id, recomm_id, weight, seq, received_at)


class SQLiteEventStore:
    def __init__(self, path: str | Path, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> SQLiteEventStore:
        """``sqlite:///var/events.db`` (relative) or ``sqlite:////abs/events.db``, as SQLAlchemy."""
        prefix = "sqlite:///"
        if not url.lower().startswith(prefix) or len(url) == len(prefix):
            raise Unavailable(f"bad SQLite URL {url!r}: expected sqlite:///PATH")
        return cls(url[len(prefix) :])

    # -- connection ------------------------------------------------------------------------------
    def _connect(self, create: bool) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if not create and not self.path.exists():
            raise SchemaMissing(
                f"{self.url}: no database file: run `recserve db upgrade --database-url {self.url}`"
            )
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except (sqlite3.Error, OSError) as exc:
            raise Unavailable(f"{self.url}: {exc}") from exc
        self._conn = conn
        return conn

    @contextlib.contextmanager
    def _transaction(self, create: bool = False, write: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN [IMMEDIATE] … COMMIT (ROLLBACK on any error), serialised in this process; a
        write transaction takes the write lock up front, so it never fails half-way on a busy one."""
        with self._lock:
            conn = self._connect(create)
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    raise SchemaMissing(
                        f"{self.url}: {exc}: run `recserve db upgrade --database-url {self.url}`"
                    ) from exc
                raise Unavailable(f"{self.url}: {exc}") from exc
            except sqlite3.Error as exc:
                raise Unavailable(f"{self.url}: {exc}") from exc

    # -- schema ----------------------------------------------------------------------------------
    def schema_version(self) -> int:
        if not self.path.exists():
            return 0
        with self._transaction(write=False) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SCHEMA_TABLE,)
            ).fetchone()
            if not found:
                return 0
            row = conn.execute(f"SELECT MAX(version) FROM {SCHEMA_TABLE}").fetchone()
            return int(row[0] or 0)

    def upgrade(self) -> tuple[int, int]:
        """Apply the missing migrations in one transaction; returns (from, to)."""
        with self._transaction(create=True) as conn:
            conn.execute(CREATE_SCHEMA_TABLE)
            before = int(conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {SCHEMA_TABLE}").fetchone()[0])
            for version in range(before + 1, LATEST + 1):
                for statement in MIGRATIONS["sqlite"][version - 1]:
                    conn.execute(statement)
                conn.execute(f"INSERT INTO {SCHEMA_TABLE} (version) VALUES (?)", (version,))
            return before, max(before, LATEST)

    # -- events ----------------------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> Appended:
        now = time.time()
        seqs: list[int | None] = []
        with self._transaction() as conn:
            for e in events:
                row = conn.execute(
                    _INSERT,
                    (e.event_id, e.user_id, e.item_id, e.type, e.timestamp, now, e.recomm_id, e.weight),
                ).fetchone()
                seqs.append(None if row is None else int(row[0]))
        return Appended(tuple(seqs))

    def watermark(self) -> int:
        with self._transaction(write=False) as conn:
            return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def read(self, after: int = 0, upto: int | None = None, batch: int = 10_000) -> Iterator[StoredEvent]:
        upto = self.watermark() if upto is None else upto
        last = after
        while True:
            with self._transaction(write=False) as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (last, upto, batch),
                ).fetchall()
            if not rows:
                return
            for r in rows:
                yield _row(r)
            last = rows[-1][0]

    def count(self, after: int = 0, upto: int | None = None) -> int:
        with self._transaction(write=False) as conn:
            if upto is None:
                return int(conn.execute("SELECT COUNT(*) FROM events WHERE seq > ?", (after,)).fetchone()[0])
            q = "SELECT COUNT(*) FROM events WHERE seq > ? AND seq <= ?"
            return int(conn.execute(q, (after, upto)).fetchone()[0])

    # -- hourly rollups (eventstore/rollup.py) -------------------------------------------------
    def add_served(self, counts: Mapping[tuple[int, str], int]) -> None:
        """Add ``{(hour, model_version): lists}`` to the served-lists counts (one transaction)."""
        rows = [(hour, version, n) for (hour, version), n in sorted(counts.items()) if n]
        if not rows:
            return
        with self._transaction() as conn:
            conn.executemany(_ADD_SERVED, rows)

    def hourly(self, first_hour: int, last_hour: int, max_fold: int = DEFAULT_MAX_FOLD) -> HourlyCounts:
        """Fold at most ``max_fold`` new events into the hourly counts, then read the window.

        One write transaction: SQLite's single writer makes ``MAX(seq)`` the watermark here and
        keeps two folds from counting an event twice; appends wait for the fold (a chunk of
        ``max_fold`` events is tens of milliseconds, see docs/feedback.md for the figures)."""
        with self._transaction() as conn:
            folded = int(conn.execute("SELECT folded_seq FROM event_rollup_state").fetchone()[0])
            watermark = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
            return fold_and_read(conn, _ROLLUP, folded, watermark, first_hour, last_hour, max_fold)

    @contextlib.contextmanager
    def retrain_lock(self) -> Iterator[None]:
        """An exclusive ``flock`` on ``<database>.retrain-lock``: released by the kernel when the
        holder exits, however it exits."""
        path = self.path.with_name(self.path.name + ".retrain-lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise LockHeld(f"{self.url}: another retrain holds {path}") from exc
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
