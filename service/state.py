"""Which model is being served, and what happened the last time we tried to load one.

Hot swap: a new model is loaded, verified and warmed *off* the request path (in a worker
thread), then published to requests by one reference assignment. A request reads
``holder.current`` once and keeps that :class:`LoadedModel` to its end, so in-flight requests
finish on the model they started with and no answer mixes two models.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_store import BundleError, InconsistentBundle, ModelStore, StoreError, open_store
from recommender.model import RecommenderModel
from service.metrics import Metrics
from service.opsmetrics import seconds_since

log = logging.getLogger("recserve.state")


@dataclass(frozen=True)
class LoadedModel:
    """An immutable pair: requests take one reference and keep using it to the end."""

    model: RecommenderModel
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def events_watermark(self) -> int:
        """The last event ``seq`` this model was trained on (``recserve retrain`` records it in
        the manifest; 0 for a model trained on base data alone)."""
        data = self.manifest.get("training_config", {}).get("data") or {}
        events = data.get("events") if isinstance(data, dict) else None
        return int(events.get("watermark", 0)) if isinstance(events, dict) else 0


@dataclass(frozen=True)
class ReloadResult:
    """What one look at the store did. Truthy when a new model was swapped in."""

    swapped: bool
    version: str | None
    error: str | None = None
    reason: str | None = None
    seconds: float | None = None

    def __bool__(self) -> bool:
        return self.swapped


def warm_up(model: RecommenderModel, n_queries: int) -> None:
    """Run a few real queries so first requests do not pay for lazy initialisation (FAISS and
    torch allocate on first use), and refuse a model whose answers are not finite numbers.

    Raises :class:`InconsistentBundle` (reason ``warmup``) on any failure.
    """
    if n_queries <= 0:
        return
    try:
        users = np.linspace(0, model.n_users - 1, num=min(n_queries, model.n_users)).astype(np.int64)
        items = np.linspace(0, model.n_items - 1, num=min(n_queries, model.n_items)).astype(np.int64)
        answers = [model.recommend(np.array([u]), 10)[0] for u in users.tolist()]
        answers += model.recommend(users, 10)
        answers += [model.similar(int(i), 10) for i in items.tolist()]
        _ = model.attribute_index  # the filter index is lazy; build it here, not on a request
    except Exception as exc:
        raise _WarmupFailed(f"model {model.version}: warm-up query failed: {exc}") from exc
    for rec in answers:
        if not np.all(np.isfinite(rec.scores)):
            raise _WarmupFailed(f"model {model.version}: warm-up query returned non-finite scores")


class _WarmupFailed(InconsistentBundle):
    reason = "warmup"


_preloaded: LoadedModel | None = None


def preload(loaded: LoadedModel | None) -> None:
    """A model loaded before the workers were forked (``recserve serve --workers N``).

    A holder whose store names this version takes it instead of reading the bundle again, so
    the forked workers share its pages (see ``recserve.workers.preload_model``).
    """
    global _preloaded
    _preloaded = loaded


def _take_preloaded(version: str) -> LoadedModel | None:
    global _preloaded
    loaded, _preloaded = _preloaded, None
    return loaded if loaded is not None and loaded.version == version else None


@dataclass
class ModelHolder:
    """Holds the current :class:`LoadedModel`; swapping it is one reference assignment.

    A failed load never replaces a working model: the failure is logged with its reason,
    counted in Prometheus (``recserve_model_load_failures_total{reason}``) and kept for
    ``/readyz``. A refused version is not retried by the poller until ``CURRENT`` changes (or an
    explicit reload), so one bad bundle counts once instead of once per poll.
    """

    store_uri: str
    metrics: Metrics
    n_candidates: int | None = None
    warmup_queries: int = 8
    cache_dir: str | None = None
    mmap: bool = False  # map embeddings and index vectors from the bundle (shared by workers)
    current: LoadedModel | None = None
    last_error: str | None = None
    last_error_reason: str | None = None
    last_error_at: float | None = None
    refused_version: str | None = None
    loaded_at: float | None = None
    last_swap_seconds: float | None = None
    history: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _store: ModelStore | None = field(default=None, repr=False)

    def set_store_uri(self, uri: str) -> None:
        """Point the holder at another store (the next load opens it)."""
        self.store_uri = uri
        self._store = None

    def store(self) -> ModelStore:
        if self._store is None:
            self._store = open_store(self.store_uri, cache_dir=self.cache_dir)
        return self._store

    def load_current(self, force: bool = False) -> ReloadResult:
        """Load the store's CURRENT version if it differs from the one serving.

        Blocking (reads, verifies and warms the bundle): call it from a worker thread when a
        server is running. ``force`` retries a version that was refused before.
        """
        with self._lock:
            serving = self.current.version if self.current else None
            try:
                version = self.store().current_version()
            except StoreError as exc:
                return self._fail("store", str(exc), None)
            if version == serving:
                self.refused_version = None  # CURRENT rolled back to what serves: nothing is refused
                return ReloadResult(False, serving)
            if version == self.refused_version and not force:
                return ReloadResult(False, serving, self.last_error, self.last_error_reason)
            return self._load(version)

    def _load(self, version: str) -> ReloadResult:
        started = time.perf_counter()
        try:
            pre = _take_preloaded(version)
            model, manifest = (pre.model, pre.manifest) if pre else self.store().load(version, mmap=self.mmap)
            if self.n_candidates is not None:
                model.n_candidates = self.n_candidates
            warm_up(model, self.warmup_queries)
        except BundleError as exc:
            return self._fail(exc.reason, str(exc), version)
        except StoreError as exc:
            return self._fail("store", str(exc), version)
        except Exception as exc:  # never let a bad bundle take the poller (or the service) down
            log.exception("unexpected error loading model %s", version)
            return self._fail("error", f"{version}: {type(exc).__name__}: {exc}", version)
        seconds = time.perf_counter() - started
        self.swap(LoadedModel(model, manifest), seconds)
        return ReloadResult(True, version, seconds=seconds)

    def swap(self, loaded: LoadedModel, seconds: float | None = None) -> None:
        """Make ``loaded`` the model new requests see (one reference assignment)."""
        if self.n_candidates is not None:
            loaded.model.n_candidates = self.n_candidates
        previous = self.current.version if self.current else None
        self.current = loaded
        self.loaded_at = time.time()
        self.last_swap_seconds = seconds
        self.refused_version = None
        self.history.append(loaded.version)
        del self.history[:-20]
        self.metrics.set_model(loaded.version)
        self.metrics.model_swaps.inc()
        if seconds is not None:
            self.metrics.model_swap_seconds.observe(seconds)
        log.info(
            "serving model %s (was %s; load+verify+warm %.3f s)", loaded.version, previous, seconds or 0.0
        )

    def _fail(self, reason: str, message: str, version: str | None) -> ReloadResult:
        serving = self.current.version if self.current else None
        repeated = message == self.last_error and version is None
        self.last_error = message
        self.last_error_reason = reason
        self.last_error_at = time.time()
        if version is not None:
            self.refused_version = version
        if not repeated:  # an empty store polled every few seconds is one event, not hundreds
            self.metrics.model_load_failures.labels(reason).inc()
            log.error("model load refused (%s): %s; still serving %s", reason, message, serving or "nothing")
        return ReloadResult(False, serving, message, reason)

    def model_age_seconds(self) -> float | None:
        """Seconds since the serving bundle was created (``recserve_model_age_seconds``), or None."""
        current = self.current
        return seconds_since(current.manifest.get("created_at")) if current else None

    def status(self) -> dict[str, Any]:
        """The details ``/readyz`` shows."""
        current = self.current
        return {
            "ready": current is not None,
            "model_version": current.version if current else None,
            "model_created_at": current.manifest.get("created_at") if current else None,
            "loaded_at": self.loaded_at,
            "last_swap_seconds": self.last_swap_seconds,
            "last_error": self.last_error,
            "last_error_reason": self.last_error_reason,
            "last_error_at": self.last_error_at,
            "refused_version": self.refused_version,
            "recent_versions": list(self.history[-5:]),
        }
