"""Hourly rollups on both backends: known events in, exact counts out; each event folded once,
however the folds are chunked or raced; served lists added up across processes."""

from __future__ import annotations

import math
import random
import re
import threading
from collections import Counter

import pytest

from eventstore import NO_RECOMM_ID, UNRECOGNISED, Event, EventStore, hour_of, open_event_store

H = 472_000  # an hour index in late 2023: hour H starts at 3600 * H Unix seconds
T = 3600.0 * H


def rid(version: str, letter: str = "p", hex16: str = "0123456789abcdef") -> str:
    return f"{letter}{hex16}.{version}"


def event(
    ts: float, type_: str = "click", recomm_id: str | None = None, event_id: str | None = None
) -> Event:
    return Event(user_id="u1", item_id="i1", type=type_, timestamp=ts, event_id=event_id, recomm_id=recomm_id)


def as_dict(rows: tuple) -> dict:
    return {row[:-1]: row[-1] for row in rows}


def test_known_events_give_exact_counts_per_hour_type_and_version(event_store: EventStore) -> None:
    event_store.append(
        [
            event(T, "click", rid("v1")),  # exactly on the hour: that hour
            event(T - 0.001, "click", rid("v1")),  # a millisecond before: the previous hour
            event(T + 3599.999, "click", rid("v1")),  # the last moment of hour H
            event(T + 3600.0, "click", rid("v1")),  # the next hour starts
            event(T + 10, "purchase", rid("v1", letter="r")),
            event(T + 20, "click", rid("2026.01.x-v2", letter="s")),  # versions may contain dots
            event(T + 30, "click", rid("v2", letter="c")),
            event(T + 40, "click"),  # no recomm_id
            event(T + 50, "view"),
            event(T + 60, "click", "r-1"),  # not recserve's format: unrecognised
            event(T + 61, "click", "p0123.short-head"),
            event(T + 62, "click", "P0123456789ABCDEF.v1"),  # upper case is not what recserve makes
            event(T + 63, "click", "p0123456789abcdef."),  # no version after the dot
            event(T + 70, "like", rid("never-served")),  # well-formed, a version nobody served
            event(T + 80, "click", rid("v1"), event_id="dup"),
            event(T + 81, "click", rid("v1"), event_id="dup"),  # a duplicate: stored, counted once
            event(T - 2 * 3600, "click", rid("v1")),  # before the window
            event(T + 3 * 3600, "click", rid("v1")),  # after the window
        ]
    )
    got = event_store.hourly(H - 1, H + 2)
    assert (got.first_hour, got.last_hour) == (H - 1, H + 2)
    assert as_dict(got.events) == {
        (H - 1, "click", "v1"): 1,
        (H, "click", "v1"): 3,  # on the hour, last moment, the deduplicated one
        (H + 1, "click", "v1"): 1,
        (H, "purchase", "v1"): 1,
        (H, "click", "2026.01.x-v2"): 1,
        (H, "click", "v2"): 1,
        (H, "click", NO_RECOMM_ID): 1,
        (H, "view", NO_RECOMM_ID): 1,
        (H, "click", UNRECOGNISED): 4,
        (H, "like", "never-served"): 1,
    }
    assert got.folded_seq == got.watermark == event_store.watermark() and not got.catching_up
    # the fold happened once: reading again (nothing new) gives the same counts
    assert as_dict(event_store.hourly(H - 1, H + 2).events) == as_dict(got.events)
    wider = as_dict(event_store.hourly(H - 2, H + 3).events)
    assert wider[(H - 2, "click", "v1")] == 1 and wider[(H + 3, "click", "v1")] == 1


def test_negative_and_fractional_hours_match_python_floor(event_store: EventStore) -> None:
    stamps = [-3600.0, -1.0, -3599.5, 0.0, 0.5, 3599.999, 3600.0, 7199.0]
    event_store.append([event(ts) for ts in stamps])
    got = as_dict(event_store.hourly(-2, 2).events)
    expected = Counter((hour_of(ts), "click", NO_RECOMM_ID) for ts in stamps)
    assert got == dict(expected)
    assert hour_of(-1.0) == -1 and hour_of(-3600.0) == -1 and hour_of(3600.0) == 1


def reference(store: EventStore, first: int, last: int) -> dict:
    """What the rollup must say, computed from the raw log in Python."""
    pattern = re.compile(r"[a-z][0-9a-f]{16}\.(.+)", re.S)
    counts: Counter = Counter()
    for e in store.read():
        if first <= hour_of(e.timestamp) <= last:
            if e.recomm_id is None:
                version = NO_RECOMM_ID
            else:
                m = pattern.fullmatch(e.recomm_id)
                version = m.group(1) if m else UNRECOGNISED
            counts[(hour_of(e.timestamp), e.type, version)] += 1
    return dict(counts)


def random_events(rng: random.Random, n: int, tag: str) -> list[Event]:
    out = []
    for i in range(n):
        recomm = rng.choice([None, "junk", rid("v1"), rid("v2", letter="s"), rid("v3.1", letter="r")])
        ts = T + rng.uniform(-4 * 3600, 4 * 3600)
        out.append(
            event(ts, rng.choice(["click", "view", "purchase"]), recomm, event_id=f"{tag}-{min(i, n - 2)}")
        )
    return out


def test_folds_in_bounded_chunks_and_counts_each_event_once(event_store: EventStore) -> None:
    rng = random.Random(5)
    event_store.append(random_events(rng, 40, "a"))
    first = event_store.hourly(H - 5, H + 5, max_fold=7)
    assert first.catching_up and first.folded_seq < first.watermark
    assert sum(n for *_, n in first.events) == 7  # one chunk of seven events, no more
    calls = 1
    while event_store.hourly(H - 5, H + 5, max_fold=7).catching_up:
        calls += 1
    assert calls + 1 == math.ceil(event_store.count() / 7) == 6  # 39 stored (1 duplicate), 7 per call
    event_store.append(random_events(rng, 25, "b"))
    final = event_store.hourly(H - 5, H + 5, max_fold=7)
    while final.catching_up:
        final = event_store.hourly(H - 5, H + 5, max_fold=7)
    assert as_dict(final.events) == reference(event_store, H - 5, H + 5)
    assert sum(n for *_, n in final.events) == event_store.count()


def test_concurrent_folds_and_appends_count_every_event_once(
    database_url: str, event_store: EventStore
) -> None:
    """Four writers append while three other store objects (replicas refreshing their
    dashboards) fold in small chunks; afterwards the counts are the log's, exactly."""
    writers = [open_event_store(database_url) for _ in range(4)]
    folders = [open_event_store(database_url) for _ in range(3)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(store: EventStore, w: int) -> None:
        rng = random.Random(w)
        for b in range(12):
            store.append(random_events(rng, 6, f"w{w}-{b}"))

    def fold(store: EventStore) -> None:
        try:
            while not stop.is_set():
                store.hourly(H - 5, H + 5, max_fold=5)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, w)) for w, s in enumerate(writers)]
    fold_threads = [threading.Thread(target=fold, args=(s,)) for s in folders]
    for t in [*fold_threads, *threads]:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in fold_threads:
        t.join()
    for s in [*writers, *folders]:
        s.close()
    assert errors == []
    final = event_store.hourly(H - 5, H + 5, max_fold=10_000)
    assert not final.catching_up
    assert as_dict(final.events) == reference(event_store, H - 5, H + 5)
    assert sum(n for *_, n in final.events) == event_store.count() == 4 * 12 * 5  # 6 posted, 1 a duplicate


def test_served_lists_add_up_across_processes_and_hours(database_url: str, event_store: EventStore) -> None:
    other = open_event_store(database_url)
    try:
        event_store.add_served({(H, "v1"): 3, (H, "v2"): 1, (H - 1, "v1"): 2, (H + 1, "v1"): 0})
        other.add_served({(H, "v1"): 4, (H + 5, "v1"): 9})
        event_store.add_served({})
        got = event_store.hourly(H - 1, H + 1)
        assert as_dict(got.served) == {(H, "v1"): 7, (H, "v2"): 1, (H - 1, "v1"): 2}
        assert as_dict(other.hourly(H + 5, H + 5).served) == {(H + 5, "v1"): 9}
        assert got.events == ()
    finally:
        other.close()


def test_upgrading_a_version_1_log_counts_its_existing_events(
    fresh_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollup arrives by migration 2 over a log that already has events: the first folds
    catch up with them (no backfill inside the migration's transaction)."""
    module = type(fresh_store).__module__
    monkeypatch.setattr(f"{module}.LATEST", 1)
    assert fresh_store.upgrade() == (0, 1)
    fresh_store.append([event(T + i, "click", rid("v1")) for i in range(5)])
    monkeypatch.undo()
    assert fresh_store.upgrade() == (1, 2)
    assert as_dict(fresh_store.hourly(H, H).events) == {(H, "click", "v1"): 5}
