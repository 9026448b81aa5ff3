"""What a dashboard refresh of the feedback section costs at 1M events:
``python -m benchmarks.feedback_rollup --events 1000000 [--postgres postgresql://root@127.0.0.1:5432/test]``.

Loads ``--events`` events (half of them in the last 48 hours, the rest over the 30 days before;
three in four credited to one of four model versions through a ``recomm_id``) straight into a
fresh store (SQLite in a temporary folder; with ``--postgres``, also PostgreSQL in a private
schema dropped afterwards), then measures, on that store:

* ``catch-up``: folding the whole log into the hourly counts, one ``hourly()`` call per chunk of
  ``max_fold`` (50,000) events: what the first refreshes after ``recserve db upgrade`` on an
  existing log cost, spread over calls (seconds per call, the largest);
* ``refresh``: one ``hourly()`` for 48 hours with nothing new (the steady state: fold nothing,
  read the window's rollup rows), median of 20;
* ``refresh +1k``: the same after 1,000 new events were appended through ``append``, median of 5;
* ``scan``: for contrast, the ``GROUP BY`` over ``events`` that the rollup replaces (the 48-hour
  window has no index on ``ts``, so it reads every row), median of 3.

Prints one line per (backend, measure) and the rows as JSON, with the rollup's row count and
the query plan of the window read (an index range scan on the rollup's primary key).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from eventstore import Event, EventStore, hour_of, open_event_store
from eventstore.rollup import (
    DEFAULT_MAX_FOLD,
    POSTGRES_HOUR,
    POSTGRES_VERSION,
    SQLITE_HOUR,
    SQLITE_VERSION,
    window_sql,
)

VERSIONS = [f"2026112{i}T000000000000Z-{i:04x}" for i in range(4)]
TYPES = ["view", "click", "purchase", "like", "dislike"]
HOURS = 48


def rows(n: int, now: float, seed: int = 0) -> Iterator[tuple[Any, ...]]:
    """(event_id, user_id, item_id, type, ts, received_at, recomm_id, weight) for ``n`` events."""
    import numpy as np

    rng = np.random.default_rng(seed)
    recent = rng.random(n) < 0.5
    age = np.where(recent, rng.uniform(0, HOURS * 3600, n), rng.uniform(HOURS * 3600, 30 * 86400, n))
    types = rng.choice(len(TYPES), n, p=[0.5, 0.3, 0.1, 0.07, 0.03])
    versions = rng.integers(0, len(VERSIONS) + 1, n)  # the last value: no recomm_id
    for i in range(n):
        v = int(versions[i])
        recomm = None if v == len(VERSIONS) else f"p{secrets.token_hex(8)}.{VERSIONS[v]}"
        yield (None, f"u{i % 50_000}", f"i{i % 7_919}", TYPES[types[i]], now - age[i], now, recomm, 1.0)


def load_sqlite(store: Any, n: int, now: float) -> None:
    conn = store._connect(create=False)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events (event_id, user_id, item_id, type, ts, received_at, recomm_id, weight) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows(n, now),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def load_postgres(store: Any, n: int, now: float) -> None:
    with (
        store._get_pool().connection() as conn,
        conn.cursor() as cur,
        cur.copy(
            "COPY events (event_id, user_id, item_id, type, ts, received_at, recomm_id, weight) FROM STDIN"
        ) as copy,
    ):
        for row in rows(n, now):
            copy.write_row(row)
    with store._get_pool().connection() as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE events")


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def scan(store: Any, backend: str, first_hour: int) -> None:
    """The GROUP BY over ``events`` the rollup replaces."""
    hour, version = (
        (SQLITE_HOUR, SQLITE_VERSION) if backend == "sqlite" else (POSTGRES_HOUR, POSTGRES_VERSION)
    )
    since = first_hour * 3600
    q = f"SELECT {hour}, type, {version}, COUNT(*) FROM events WHERE ts >= {since} GROUP BY 1, 2, 3"
    if backend == "sqlite":
        store._connect(create=False).execute(q).fetchall()
    else:
        with store._get_pool().connection() as conn:
            conn.execute(q).fetchall()


def plan(store: Any, backend: str, first: int, last: int) -> str:
    q = window_sql("?" if backend == "sqlite" else "%s")[0]
    if backend == "sqlite":
        got = store._connect(create=False).execute(f"EXPLAIN QUERY PLAN {q}", (first, last)).fetchall()
        return "; ".join(str(r[-1]) for r in got)
    with store._get_pool().connection() as conn:
        got = conn.execute(f"EXPLAIN {q}", (first, last)).fetchall()
        return "; ".join(r[0].strip() for r in got)


def measure(store: EventStore, backend: str, n: int) -> list[dict[str, Any]]:
    now = time.time()
    start = time.perf_counter()
    (load_sqlite if backend == "sqlite" else load_postgres)(store, n, now)
    print(f"{backend}: loaded {n:,} events in {time.perf_counter() - start:.1f} s", flush=True)
    last = hour_of(now)
    first = last - HOURS + 1
    catch_up = []
    while True:
        started = time.perf_counter()
        counts = store.hourly(first, last)
        catch_up.append(time.perf_counter() - started)
        if not counts.catching_up:
            break
    everything = store.hourly(hour_of(now - 31 * 86400), last)
    assert sum(c for *_, c in everything.events) == n, "the rollup must hold every event once"
    refresh = [timed(lambda: store.hourly(first, last)) for _ in range(20)]
    after_1k = []
    for r in range(5):
        store.append([Event(f"n{r}-{j}", f"i{j}", "click", now, recomm_id=None) for j in range(1000)])
        after_1k.append(timed(lambda: store.hourly(first, last)))
    scans = [timed(lambda: scan(store, backend, first)) for _ in range(3)]
    window = store.hourly(first, last)
    out = [
        {
            "backend": backend,
            "measure": "catch-up",
            "events": n,
            "calls": len(catch_up),
            "max_fold": DEFAULT_MAX_FOLD,
            "seconds_total": sum(catch_up),
            "seconds_per_call_max": max(catch_up),
        },
        {"backend": backend, "measure": "refresh", "ms_median": 1000 * statistics.median(refresh)},
        {"backend": backend, "measure": "refresh +1k", "ms_median": 1000 * statistics.median(after_1k)},
        {"backend": backend, "measure": "scan", "ms_median": 1000 * statistics.median(scans)},
        {
            "backend": backend,
            "measure": "window",
            "rollup_rows_read": len(window.events) + len(window.served),
            "events_in_window": sum(c for *_, c in window.events),
            "plan": plan(store, backend, first, last),
        },
    ]
    for row in out:
        print(json.dumps(row), flush=True)
    return out


@contextlib.contextmanager
def sqlite_store(folder: Path) -> Iterator[EventStore]:
    store = open_event_store(f"sqlite:///{folder / 'events.db'}")
    store.upgrade()
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def postgres_store(admin_url: str) -> Iterator[EventStore]:
    import psycopg

    schema = f"recserve_bench_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    store = open_event_store(f"{admin_url}?options={quote(f'-csearch_path={schema}')}")
    try:
        store.upgrade()
        yield store
    finally:
        store.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.feedback_rollup", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres", metavar="URL", help="also measure PostgreSQL (a private schema, dropped)"
    )
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp, sqlite_store(Path(tmp)) as store:
        results += measure(store, "sqlite", args.events)
    if args.postgres:
        with postgres_store(args.postgres) as store:
            results += measure(store, "postgresql", args.events)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
