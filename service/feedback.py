"""``POST /feedback`` behind the router: store the events durably, then make them count.

Order of work, and why:

1. **store** the batch in one transaction (:mod:`eventstore`), in a worker thread so the event
   loop keeps serving; the 202 is sent only after the commit returned, so an acknowledged event
   survives a crash of this process right after it;
2. **count** it: accepted/duplicate by type, unknown users and items (against the serving
   model), and feedback credited to the served list its ``recomm_id`` names;
3. **remember** each accepted event in the user's fresh history (``service/fresh.py``), which the
   next /recommend reads. Best effort: a Redis outage loses freshness, never an event.

The event store is opened on the first request, not at startup: recommendations never depend
on the database, so a service whose database is down or not migrated still answers them, and
/feedback answers 503 ``event_store_unavailable`` naming the cause (``recserve db upgrade`` for
a missing schema) until it is fixed; the store is re-tried at most every ``RETRY_S`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from eventstore import Event, EventStore, EventStoreError, check_schema, open_event_store, redact
from service.exceptions import EventStoreUnavailable
from service.fresh import FreshItem, FreshStore
from service.metrics import Metrics
from service.recomm import parse_recomm_id
from service.state import ModelHolder

log = logging.getLogger("recserve.feedback")
RETRY_S = 2.0


@dataclass(frozen=True)
class FeedbackCommand:
    """Validated events, in request order (``timestamp`` filled in)."""

    events: tuple[Event, ...]


@dataclass(frozen=True)
class FeedbackResult:
    accepted: int
    duplicates: int
    unknown_users: int
    unknown_items: int

    def body(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "unknown_users": self.unknown_users,
            "unknown_items": self.unknown_items,
        }


class Feedback:
    def __init__(self, database_url: str, holder: ModelHolder, metrics: Metrics, fresh: FreshStore) -> None:
        self.database_url = database_url
        self.holder = holder
        self.metrics = metrics
        self.fresh = fresh
        self._store: EventStore | None = None
        self._error: str | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()

    @property
    def status(self) -> str:
        """``ok``, ``not opened yet`` or the last reason the store was unusable."""
        if self._store is not None:
            return "ok"
        return self._error or "not opened yet"

    def opened(self) -> EventStore | None:
        """The store if it has been opened (never opens it: see ``service/impressions.py``)."""
        return self._store

    def store(self) -> EventStore:
        """The checked store, opened on first use (raises :class:`EventStoreUnavailable`)."""
        if self._store is not None:
            return self._store
        with self._lock:
            if self._store is not None:
                return self._store
            if self._error is not None and time.monotonic() < self._retry_at:
                raise EventStoreUnavailable(self._error)
            store = None
            try:
                store = open_event_store(self.database_url)
                check_schema(store)
            except EventStoreError as exc:
                if store is not None:
                    store.close()
                self._error = f"event store unavailable: {exc}"
                self._retry_at = time.monotonic() + RETRY_S
                log.error("%s", self._error)
                raise EventStoreUnavailable(self._error) from exc
            self._store, self._error = store, None
            log.info("event store %s ready", redact(self.database_url))
            return store

    def ingest(self, command: FeedbackCommand) -> FeedbackResult:
        """Store, count, remember (blocking: call it in a worker thread)."""
        store = self.store()
        started = time.perf_counter()
        try:
            appended = store.append(command.events)
        except EventStoreError as exc:
            log.error("storing %d events failed: %s", len(command.events), exc)
            raise EventStoreUnavailable(f"events not stored: {exc}") from exc
        self.metrics.feedback_commit_seconds.observe(time.perf_counter() - started)
        current = self.holder.current
        model = current.model if current is not None else None
        served = set(self.holder.history)
        unknown_users = unknown_items = 0
        fresh: dict[str, list[FreshItem]] = defaultdict(list)
        for event, seq in zip(command.events, appended.seqs, strict=True):
            if seq is None:
                self.metrics.feedback_events.labels(event.type, "duplicate").inc()
                continue
            self.metrics.feedback_events.labels(event.type, "accepted").inc()
            if model is not None and event.user_id not in model.user_ids:
                unknown_users += 1
            if model is not None and event.item_id not in model.item_ids:
                unknown_items += 1
            if event.recomm_id is not None:
                self._credit(event, served)
            fresh[event.user_id].append(FreshItem(seq, event.type, event.item_id))
        if unknown_users:
            self.metrics.feedback_unknown.labels("user").inc(unknown_users)
        if unknown_items:
            self.metrics.feedback_unknown.labels("item").inc(unknown_items)
        for user_id, items in fresh.items():
            self.fresh.add(user_id, items)
        return FeedbackResult(appended.accepted, appended.duplicates, unknown_users, unknown_items)

    def _credit(self, event: Event, served: set[str]) -> None:
        parsed = parse_recomm_id(event.recomm_id or "")
        if parsed is None:
            self.metrics.feedback_credited.labels("other", "unknown", event.type).inc()
            return
        version, strategy = parsed
        self.metrics.feedback_credited.labels(
            version if version in served else "other", strategy, event.type
        ).inc()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
