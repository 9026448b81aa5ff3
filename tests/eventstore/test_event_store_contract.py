"""One contract, both backends (``database_url`` is SQLite on tmp, then PostgreSQL in a private
schema): schema by migration only, atomic deduplicated appends, a watermark no later commit can
slip under, and a retrain lock only one holder gets."""

from __future__ import annotations

import threading

import pytest

from eventstore import (
    SCHEMA_VERSION,
    Event,
    EventStore,
    LockHeld,
    SchemaMissing,
    Unavailable,
    check_schema,
    open_event_store,
)


def ev(i: int, event_id: str | None = None, **kw: object) -> Event:
    fields: dict = {
        "user_id": f"u{i % 7}",
        "item_id": f"i{i}",
        "type": "click",
        "timestamp": 1_700_000_000.0 + i,
    }
    fields.update(kw)
    return Event(event_id=event_id, **fields)


def test_nothing_exists_until_upgrade(fresh_store: EventStore) -> None:
    assert fresh_store.schema_version() == 0
    with pytest.raises(SchemaMissing, match="recserve db upgrade"):
        check_schema(fresh_store)
    with pytest.raises(SchemaMissing, match="recserve db upgrade"):
        fresh_store.append([ev(1)])
    assert fresh_store.upgrade() == (0, SCHEMA_VERSION)
    assert fresh_store.upgrade() == (SCHEMA_VERSION, SCHEMA_VERSION)  # idempotent
    check_schema(fresh_store)
    assert fresh_store.schema_version() == SCHEMA_VERSION


def test_append_round_trips_every_field_in_seq_order(event_store: EventStore) -> None:
    events = [
        ev(1, "e1", weight=2.5, recomm_id="r-1"),
        ev(2, None, type="purchase"),
        ev(3, "e3", user_id="ü-ser", item_id="ítem/3"),
    ]
    result = event_store.append(events)
    assert result.accepted == 3 and result.duplicates == 0
    seqs = list(result.seqs)
    assert all(s is not None for s in seqs) and seqs == sorted(seqs) and len(set(seqs)) == 3
    stored = list(event_store.read())
    assert [s.seq for s in stored] == seqs
    for original, got in zip(events, stored, strict=True):
        assert (got.user_id, got.item_id, got.type, got.timestamp) == (
            original.user_id,
            original.item_id,
            original.type,
            original.timestamp,
        )
        assert (got.event_id, got.recomm_id, got.weight) == (
            original.event_id,
            original.recomm_id,
            original.weight,
        )
        assert got.received_at > 0


def test_same_event_id_is_stored_once_within_and_across_batches(event_store: EventStore) -> None:
    first = event_store.append([ev(1, "a"), ev(2, "b"), ev(1, "a")])
    assert first.accepted == 2 and first.duplicates == 1 and first.seqs[2] is None
    again = event_store.append([ev(9, "a", type="like"), ev(3, "c")])
    assert again.seqs[0] is None and again.accepted == 1
    stored = list(event_store.read())
    assert sorted(e.event_id for e in stored) == ["a", "b", "c"]
    assert next(e for e in stored if e.event_id == "a").item_id == "i1"  # the first one wins


def test_events_without_id_are_never_deduplicated(event_store: EventStore) -> None:
    assert event_store.append([ev(1), ev(1)]).accepted == 2
    assert event_store.append([ev(1)]).accepted == 1
    assert event_store.count() == 3


def test_a_batch_is_stored_whole_or_not_at_all(event_store: EventStore) -> None:
    event_store.append([ev(1, "kept")])
    bad = Event(user_id=None, item_id="i2", type="click", timestamp=1.0)  # type: ignore[arg-type]
    with pytest.raises(Unavailable):
        event_store.append([ev(2, "lost-1"), bad, ev(3, "lost-2")])
    assert [e.event_id for e in event_store.read()] == ["kept"]
    assert event_store.append([ev(2, "lost-1")]).accepted == 1  # the ids were not taken either


def test_watermark_bounds_reads_and_counts(event_store: EventStore) -> None:
    assert event_store.watermark() == 0
    first = event_store.append([ev(i) for i in range(5)])
    w = event_store.watermark()
    assert w == max(s for s in first.seqs if s is not None)
    later = event_store.append([ev(i) for i in range(5, 8)])
    assert all(s is not None and s > w for s in later.seqs)
    assert event_store.count(upto=w) == 5 and event_store.count() == 8
    assert [e.item_id for e in event_store.read(upto=w)] == [f"i{i}" for i in range(5)]
    assert [e.item_id for e in event_store.read(after=w)] == ["i5", "i6", "i7"]
    assert event_store.count(after=w, upto=event_store.watermark()) == 3


def test_reads_page_through_large_logs(event_store: EventStore) -> None:
    event_store.append([ev(i) for i in range(25)])
    got = list(event_store.read(batch=4))  # type: ignore[call-arg]
    assert [e.item_id for e in got] == [f"i{i}" for i in range(25)]


def test_no_commit_lands_under_a_watermark_already_read(database_url: str, event_store: EventStore) -> None:
    """Writers on four connections; a reader takes watermarks meanwhile and reads up to each. At
    the end, what was read up to every watermark must be everything that exists up to it."""
    writers = [open_event_store(database_url) for _ in range(4)]
    seen: list[tuple[int, set[int]]] = []
    stop = threading.Event()

    def write(store: EventStore, w: int) -> None:
        for b in range(15):
            store.append([ev(1000 * w + 10 * b + j, f"w{w}-{b}-{j}") for j in range(3)])

    def read() -> None:
        while not stop.is_set():
            mark = event_store.watermark()
            seen.append((mark, {e.seq for e in event_store.read(upto=mark)}))

    threads = [threading.Thread(target=write, args=(s, w)) for w, s in enumerate(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join()
    for s in writers:
        s.close()
    final = {e.seq for e in event_store.read()}
    assert len(final) == 4 * 15 * 3
    assert len(seen) > 1
    for mark, got in seen:
        assert got == {s for s in final if s <= mark}


def test_a_second_store_object_sees_committed_events(database_url: str, event_store: EventStore) -> None:
    event_store.append([ev(1, "x")])
    other = open_event_store(database_url)
    try:
        assert [e.event_id for e in other.read()] == ["x"]
        assert other.append([ev(1, "x")]).duplicates == 1
    finally:
        other.close()


def test_only_one_retrain_lock_holder(database_url: str, event_store: EventStore) -> None:
    other = open_event_store(database_url)
    try:
        with event_store.retrain_lock(), pytest.raises(LockHeld), other.retrain_lock():
            pass
        with other.retrain_lock():  # released by the first holder
            pass
    finally:
        other.close()


def test_unreachable_or_malformed_urls_fail_with_the_url() -> None:
    from eventstore import EventStoreError

    with pytest.raises(EventStoreError, match="unsupported database URL"):
        open_event_store("mysql://x")
    store = open_event_store("postgresql://nobody:secret@127.0.0.1:1/none")
    store.timeout_s = 1.0  # type: ignore[attr-defined]
    with pytest.raises(Unavailable) as info:
        store.watermark()
    assert "secret" not in str(info.value) and "***" in str(info.value)
