"""Which model is being served, and what happened the last time we tried to load one."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from model_store import BundleError, StoreError, open_store
from recommender.model import RecommenderModel
from service.metrics import Metrics

log = logging.getLogger("recserve.state")


@dataclass(frozen=True)
class LoadedModel:
    """An immutable pair: requests take one reference and keep using it to the end."""

    model: RecommenderModel
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return self.model.version


@dataclass
class ModelHolder:
    """Holds the current :class:`LoadedModel`; swapping it is one reference assignment.

    A failed load never replaces a working model: the failure is recorded (``last_error``) for
    ``/readyz`` and counted in Prometheus.
    """

    store_uri: str
    metrics: Metrics
    n_candidates: int | None = None
    current: LoadedModel | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    loaded_at: float | None = None
    history: list[str] = field(default_factory=list)

    def load_current(self) -> bool:
        """Load the store's CURRENT version if it differs from the one serving. True on a swap."""
        store = open_store(self.store_uri)
        try:
            version = store.current_version()
            if self.current is not None and self.current.version == version:
                return False
            model, manifest = store.load(version)
        except BundleError as exc:
            self._fail(exc.reason, str(exc))
            return False
        except StoreError as exc:
            self._fail("store", str(exc))
            return False
        self.swap(LoadedModel(model, manifest))
        return True

    def swap(self, loaded: LoadedModel) -> None:
        if self.n_candidates is not None:
            loaded.model.n_candidates = self.n_candidates
        self.current = loaded
        self.loaded_at = time.time()
        self.history.append(loaded.version)
        self.metrics.set_model(loaded.version)
        log.info("serving model %s", loaded.version)

    def _fail(self, reason: str, message: str) -> None:
        self.last_error = message
        self.last_error_at = time.time()
        self.metrics.model_load_failures.labels(reason).inc()
        log.error("model load refused (%s): %s", reason, message)
