"""The dashboard's model section: the serving model and the store's versions side by side.

Everything comes from manifests (``model_store/manifest.py``): ``created_at``, ``dims``,
``data_fingerprint``, ``training_config`` (MF loss, dimension, epochs) and ``metrics``, where
``training/pipeline.py`` writes the offline test figures of the three methods (``popularity``,
``retrieval``, ``two_stage``: ``recall@K``/``ndcg@K`` for K in 10, 20). Which version is CURRENT
and which one ``recserve store rollback`` would restore is asked of the store itself
(:meth:`~model_store.store.ModelStore.previous_version`), so the page can never disagree with the
CLI. Bundles are immutable, so a version's manifest is read once and kept (:class:`ManifestCache`);
the version list and the CURRENT/HISTORY pointers are read on every refresh.

Store reads block (a file or an S3 GET each): call :func:`model_view` from a worker thread.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from typing import Any

from model_store import ModelStore, NoModelPublished, StoreError
from service.state import ModelHolder

METHODS = ("popularity", "retrieval", "two_stage")
MAX_VERSIONS = 12


class ManifestCache:
    """Manifests by version, read once (a published bundle never changes); at most ``size`` kept."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._by_version: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, store: ModelStore, version: str) -> dict[str, Any]:
        with self._lock:
            cached = self._by_version.get(version)
        if cached is not None:
            return cached
        manifest = store.manifest(version)
        with self._lock:
            if len(self._by_version) >= self.size:
                self._by_version.pop(next(iter(self._by_version)))
            self._by_version[version] = manifest
        return manifest


def _age_seconds(created_at: Any, now: float) -> float | None:
    try:
        return max(0.0, now - datetime.fromisoformat(str(created_at)).timestamp())
    except ValueError:
        return None


def _metric_order(name: str) -> tuple[int, bool, str]:
    m = re.search(r"@(\d+)$", name)
    return (int(m.group(1)) if m else 10**9, not name.startswith("recall"), name)


def version_summary(manifest: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """What the page shows of one version, from its manifest alone."""
    now = time.time() if now is None else now
    config = manifest.get("training_config") or {}
    mf = config.get("mf") or {}
    metrics = manifest.get("metrics") or {}
    fingerprint = manifest.get("data_fingerprint")
    return {
        "version": manifest.get("version"),
        "created_at": manifest.get("created_at"),
        "age_seconds": _age_seconds(manifest.get("created_at"), now),
        "dims": manifest.get("dims") or {},
        "data_fingerprint": fingerprint[:12] if isinstance(fingerprint, str) else None,
        "loss": mf.get("loss"),
        "embedding_dim": mf.get("dim"),
        "epochs": mf.get("epochs"),
        "n_candidates": config.get("n_candidates"),
        "metrics": {m: metrics[m] for m in METHODS if isinstance(metrics.get(m), dict)},
        "candidate_recall": metrics.get("candidate_recall"),
        "train_seconds": metrics.get("train_seconds"),
    }


def metric_names(summaries: list[dict[str, Any]]) -> list[str]:
    """Every metric any listed version carries, ordered by cut-off, recall first
    (recall@10, ndcg@10, recall@20, …) as the README's tables."""
    names = {n for s in summaries for per in s.get("metrics", {}).values() for n in per}
    return sorted(names, key=_metric_order)


def _serving(holder: ModelHolder, now: float) -> dict[str, Any] | None:
    loaded = holder.current
    if loaded is None:
        return None
    model = loaded.model
    summary = version_summary(loaded.manifest, now)
    summary.update(
        {
            "dataset": model.metadata.get("dataset"),
            "n_users": model.n_users,
            "n_items": model.n_items,
            "n_train_interactions": len(model.seen_indices),
            "serving_n_candidates": model.n_candidates,
            "has_ranker": model.ranker is not None,
            "item_attributes": sorted(model.item_attributes),
            "loaded_at": holder.loaded_at,
        }
    )
    return summary


def _store_section(holder: ModelHolder, manifests: ManifestCache, now: float, limit: int) -> dict[str, Any]:
    store = holder.store()
    try:
        current: str | None = store.current_version()
    except NoModelPublished:
        current = None
    previous = store.previous_version()
    versions = store.list_versions()
    shown = versions[-limit:] if limit else []
    shown += [v for v in (current, previous) if v is not None and v in versions and v not in shown]
    rows = []
    for version in sorted(shown, reverse=True):  # newest first; ids sort by creation time
        try:
            row = version_summary(manifests.get(store, version), now)
        except StoreError as exc:  # BundleError included: one damaged manifest is one row's note
            row = {"version": version, "error": str(exc)}
        row["version"] = version
        row["mark"] = "current" if version == current else "previous" if version == previous else ""
        rows.append(row)
    return {
        "uri": store.uri,
        "current": current,
        "previous": previous,
        "n_versions": len(versions),
        "versions": rows,
        "error": None,
    }


def _is_store_failure(exc: Exception) -> bool:
    """Errors of reading the store (files, S3 client) rather than bugs in this module."""
    module = type(exc).__module__.split(".")[0]
    return isinstance(exc, StoreError | OSError) or module in ("botocore", "boto3", "s3transfer")


def model_view(holder: ModelHolder, manifests: ManifestCache, limit: int = MAX_VERSIONS) -> dict[str, Any]:
    """The serving model, the load status ``/readyz`` shows, and the newest ``limit`` versions of
    the store (plus CURRENT and the previous one wherever they are), newest first.

    A store that cannot be read (S3 down) still yields the serving model, with ``store.error``.
    """
    now = time.time()
    serving = _serving(holder, now)
    try:
        store = _store_section(holder, manifests, now, limit)
    except Exception as exc:
        if not _is_store_failure(exc):
            raise
        store = {"uri": holder.store_uri, "current": None, "previous": None, "n_versions": 0}
        store.update(versions=[], error=str(exc))
    summaries = [s for s in [serving, *store["versions"]] if s is not None]
    return {
        "now": now,
        "serving": serving,
        "status": holder.status(),
        "store": store,
        "methods": list(METHODS),
        "metric_names": metric_names(summaries),
    }
