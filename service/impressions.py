"""Lists served, per model version and hour, into the event store: the denominator of the
click-through rate the dashboard shows (docs/feedback.md, "Click-through by model version").

The request path does not change: it already counts every list it answers in
``recserve_lists_served_total{version, strategy}`` (one per ``recomm_id`` handed out). This
process adds what that counter gained since its last write to ``lists_served_hourly`` every
``FLUSH_S`` seconds, at shutdown, and before the dashboard reads the counts, as one additive
upsert per version (a few rows, one small transaction). So:

* every replica and worker process adds its own lists; the table holds their sum;
* the lists of a flush interval are booked to the hour of the flush (at most ``FLUSH_S``
  seconds of lists land in the next hour);
* until the event store has been opened (by ``/feedback`` or the dashboard), nothing is
  written and nothing is lost: the counter keeps growing and the first write carries it all.
  A store that fails a write keeps the delta for the next one. Lost only: what a process
  served in its last ``FLUSH_S`` seconds before being killed (SIGKILL skips the shutdown flush).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from eventstore import EventStore, EventStoreError, hour_of
from service.metrics import Metrics

log = logging.getLogger("recserve.impressions")
FLUSH_S = 15.0


class ServedLists:
    """This process's lists served, written to the event store as deltas of the counter."""

    def __init__(
        self,
        metrics: Metrics,
        opened: Callable[[], EventStore | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.opened = opened  # the event store if this process has opened it, else None
        self.clock = clock
        self._written: dict[str, float] = {}
        self._lock = threading.Lock()
        self._failing = False

    def served(self) -> dict[str, float]:
        """Lists served by this process since it started, per model version (all strategies)."""
        totals: dict[str, float] = {}
        for metric in self.metrics.lists_served.collect():
            for s in metric.samples:
                if s.name.endswith("_total"):
                    totals[s.labels["version"]] = totals.get(s.labels["version"], 0.0) + s.value
        return totals

    def flush(self, store: EventStore | None = None) -> int:
        """Write what the counter gained since the last write; returns the lists written.

        Blocking (a database transaction): call it from a worker thread. Raises
        :class:`~eventstore.EventStoreError` when the write fails (the delta is kept)."""
        store = store if store is not None else self.opened()
        if store is None:
            return 0
        with self._lock:
            now = self.served()
            delta = {v: round(n - self._written.get(v, 0.0)) for v, n in now.items()}
            delta = {v: n for v, n in delta.items() if n > 0}
            if not delta:
                return 0
            hour = hour_of(self.clock())
            store.add_served({(hour, version): n for version, n in delta.items()})
            for version, n in delta.items():
                self._written[version] = self._written.get(version, 0.0) + n
            return sum(delta.values())

    def flush_quietly(self) -> None:
        """:meth:`flush` for the background loop: a failure is logged once, retried next time."""
        try:
            self.flush()
        except EventStoreError as exc:
            if not self._failing:
                log.warning("lists served not written to the event store (kept for the next try): %s", exc)
            self._failing = True
        else:
            self._failing = False

    async def run(self, interval_s: float = FLUSH_S) -> None:
        """Flush every ``interval_s`` seconds, in a worker thread, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(self.flush_quietly)
