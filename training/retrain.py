"""``recserve retrain``: base data + every event up to a watermark → train → publish → precompute
→ promote, in an order that a crash at any step cannot leave half-done.

1. take the **retrain lock** (the event store's: a PostgreSQL advisory lock, or a ``flock`` next
   to the SQLite file); a second run fails at once with :class:`~eventstore.LockHeld`;
2. read CURRENT and its manifest: the **base** data and training configuration it records, and
   the watermark it was trained to (0 for a model trained on base data alone);
3. take a new **watermark** W; skip when fewer than ``min_new_events`` events arrived since;
4. **train** on base + events with ``seq <= W`` (``training/feedback_data.py``);
5. **publish** the bundle without making it CURRENT; its manifest records the base and
   ``events: {watermark: W, read, used, new_users, new_items}`` under ``training_config.data``;
6. **precompute** its lists into Redis when configured (the ``ready`` marker is written last);
7. **promote** it with a compare-and-set on CURRENT (``ModelStore.promote(expect_current=…)``):
   if someone published meanwhile, this run fails instead of replacing their model.

The watermark lives in the manifest, so it advances only with step 7. A crash before it leaves
CURRENT, the serving cache (keys are per version) and the watermark as they were; what remains is
at most an unreferenced version in the store (``recserve store gc`` removes it) and unmarked
Redis keys that expire. The next run redoes the work. Services hot-swap to the new CURRENT by
their store poller (or ``POST /admin/reload``), its lists already in Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from eventstore import EventStore
from model_store import ModelStore
from recommender.model import RecommenderModel
from training.feedback_data import EventStats, base_data, train_config_from, with_events
from training.pipeline import train_model

log = logging.getLogger("recserve.retrain")

#: steps a test may interrupt (``fail_after``), in order
STEPS = ("lock", "base", "watermark", "train", "publish", "precompute", "promote")


@dataclass
class RetrainReport:
    base_version: str
    watermark: int
    previous_watermark: int
    version: str | None = None  # None: skipped (nothing new)
    events: EventStats | None = None
    precomputed: bool = False
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["skipped"] = self.version is None
        return out


def _watermark_of(manifest: dict[str, Any]) -> int:
    data = manifest.get("training_config", {}).get("data") or {}
    events = data.get("events") if isinstance(data, dict) else None
    return int(events.get("watermark", 0)) if isinstance(events, dict) else 0


def retrain(
    store: ModelStore,
    events: EventStore,
    positive_types: Collection[str],
    precompute: Callable[[RecommenderModel], None] | None = None,
    min_new_events: int = 1,
    progress: bool = False,
    fail_after: str | None = None,
) -> RetrainReport:
    """One retrain as the module docstring describes; ``fail_after`` (tests) raises after a step."""

    def step_done(name: str) -> None:
        if fail_after == name:
            raise RuntimeError(f"injected failure after step {name!r}")

    started = time.perf_counter()
    with events.retrain_lock():
        step_done("lock")
        base_version = store.current_version()
        manifest = store.manifest(base_version)
        recorded = dict(manifest.get("training_config") or {})
        source = {k: v for k, v in (recorded.pop("data", None) or {}).items() if k != "events"}
        config = train_config_from(recorded)
        base = base_data(source, base_version)
        step_done("base")
        previous = _watermark_of(manifest)
        watermark = events.watermark()
        report = RetrainReport(base_version, watermark, previous)
        step_done("watermark")
        new = events.count(after=previous, upto=watermark) if watermark > previous else 0
        if new < min_new_events:
            log.info("retrain skipped: %d new events since %s (need %d)", new, base_version, min_new_events)
            report.seconds = time.perf_counter() - started
            return report
        data, stats = with_events(base, events.read(upto=watermark), positive_types)
        log.info(
            "retraining %s + %d events (seq <= %d): %d training pairs added, %d new users, %d new items",
            data.name, stats.read, watermark, stats.used, stats.new_users, stats.new_items,
        )  # fmt: skip
        model, metrics = train_model(data, config, progress)
        step_done("train")
        training_config = asdict(config)
        training_config["data"] = {**source, "events": {"watermark": watermark, **stats.as_dict()}}
        metrics["base_version"] = base_version
        version = store.publish(
            model, training_config, metrics, data_fingerprint=data.fingerprint(), make_current=False
        )
        step_done("publish")
        if precompute is not None:
            precompute(model)
            report.precomputed = True
        step_done("precompute")
        store.promote(version, expect_current=base_version)
        step_done("promote")
    report.version, report.events, report.metrics = version, stats, metrics
    report.seconds = time.perf_counter() - started
    return report
