"""``retrain``: base data + events up to a watermark → a new CURRENT whose manifest counts them;
nothing new, nothing done; a crash at any step leaves CURRENT and the watermark as they were; two
runs cannot both publish."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from retrain_support import TINY_DATA, copy_store, publish_tiny

from eventstore import Event, EventStore, LockHeld, open_event_store
from model_store import CurrentMoved, LocalStore
from model_store.store import clone_model
from training.retrain import STEPS, retrain

POSITIVE = ("click", "purchase", "like")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "store"
    publish_tiny(root)
    return root


@pytest.fixture
def store(template: Path, tmp_path: Path) -> LocalStore:
    return copy_store(template, tmp_path / "store")


@pytest.fixture
def events(tmp_path: Path) -> Iterator[EventStore]:
    s = open_event_store(f"sqlite:///{tmp_path / 'events.db'}")
    s.upgrade()
    yield s
    s.close()


def watermark(store: LocalStore) -> int:
    data = store.manifest(store.current_version())["training_config"].get("data", {})
    return data.get("events", {}).get("watermark", 0)


def some_events(events: EventStore) -> None:
    events.append(
        [
            Event("u1", "i5", "click", 1.0, "a"),
            Event("newbie", "i3", "purchase", 2.0, "b"),
            Event("u2", "i4", "view", 3.0, "c"),  # kept, not trained on
            Event("u3", "fresh-item", "like", 4.0, "d"),
        ]
    )


def test_a_retrain_trains_on_base_and_events_and_records_the_watermark(
    store: LocalStore, events: EventStore
) -> None:
    base = store.current_version()
    assert store.manifest(base)["training_config"]["data"] == {
        "dataset": "synthetic",
        "synthetic": vars(TINY_DATA),
    }
    some_events(events)
    report = retrain(store, events, POSITIVE)
    assert report.version is not None and store.current_version() == report.version
    manifest = store.manifest(report.version)
    data = manifest["training_config"]["data"]
    assert data["dataset"] == "synthetic" and data["synthetic"] == vars(TINY_DATA)  # the base, unchanged
    assert data["events"] == {
        "watermark": events.watermark(),
        "read": 4,
        "used": 3,
        "new_users": 1,
        "new_items": 1,
    }
    assert manifest["metrics"]["base_version"] == base
    model, _ = store.load()
    assert "newbie" in model.user_ids and "fresh-item" in model.item_ids
    assert model.item_ids.get("i5") in model.seen(model.user_ids.get("u1")).tolist()
    assert model.item_ids.get("i4") not in model.seen(model.user_ids.get("u2")).tolist()  # a view
    base_model, _ = store.load(base)
    assert model.n_users == base_model.n_users + 1 and model.n_items == base_model.n_items + 1


def test_nothing_new_is_nothing_done(store: LocalStore, events: EventStore) -> None:
    base = store.current_version()
    assert retrain(store, events, POSITIVE).version is None  # no events at all
    some_events(events)
    first = retrain(store, events, POSITIVE)
    assert first.version is not None
    again = retrain(store, events, POSITIVE)
    assert again.version is None and store.current_version() == first.version
    events.append([Event("u4", "i9", "click", 5.0, "e")])
    assert retrain(store, events, POSITIVE, min_new_events=2).version is None
    assert store.list_versions() == sorted([base, first.version])


@pytest.mark.parametrize("step", [s for s in STEPS if s != "promote"])
def test_a_crash_at_any_step_leaves_current_and_watermark(
    store: LocalStore, events: EventStore, step: str
) -> None:
    some_events(events)
    before, mark = store.current_version(), watermark(store)
    precomputed: list[str] = []
    with pytest.raises(RuntimeError, match=step):
        retrain(store, events, POSITIVE, precompute=lambda m: precomputed.append(m.version), fail_after=step)
    assert store.current_version() == before and watermark(store) == mark
    assert store.history()[-1] == before
    # the next run redoes the work (and the lock was released)
    report = retrain(store, events, POSITIVE, precompute=lambda m: precomputed.append(m.version))
    assert store.current_version() == report.version and watermark(store) == events.watermark()
    assert precomputed[-1] == report.version


def test_two_runs_cannot_both_publish(store: LocalStore, events: EventStore, tmp_path: Path) -> None:
    some_events(events)
    base = store.current_version()
    other = open_event_store(events.url)
    try:
        with other.retrain_lock(), pytest.raises(LockHeld):
            retrain(store, events, POSITIVE)
    finally:
        other.close()
    assert store.current_version() == base

    # A writer that does not take the lock (a `recserve train`, another store client) and wins
    # the race to CURRENT: the retrain's compare-and-set promote refuses to overwrite it.
    def someone_publishes_meanwhile(model) -> None:  # type: ignore[no-untyped-def]
        store.publish(clone_model(model, "someone-else"))

    with pytest.raises(CurrentMoved):
        retrain(store, events, POSITIVE, precompute=someone_publishes_meanwhile)
    assert store.current_version() == "someone-else"
