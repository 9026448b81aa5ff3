"""What every list backend provides, and the observer it reports failures to.

Two paths use a backend, with opposite failure policies:

* the **serving path** (:meth:`ListBackend.ready`, :meth:`~ListBackend.get`,
  :meth:`~ListBackend.set`) never raises: a slow, empty or dead cache is a miss, and the
  request is computed instead;
* the **batch path** (:meth:`~ListBackend.set_many`, :meth:`~ListBackend.mark_ready`, used by
  the precompute job) raises :class:`WriteError`, so a half-written version never gets its
  ``ready`` marker.

A new backend (memcached, …) implements these six methods; nothing else in the
service or the precompute job changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np

#: a stored list: (int32 item indices, float32 scores), best first
StoredList = tuple[np.ndarray, np.ndarray]
#: one list to write: (key, item indices, scores)
ListWrite = tuple[str, np.ndarray, np.ndarray]


class WriteError(RuntimeError):
    """A batch write failed; the ``ready`` marker must not be written."""


class CacheObserver(Protocol):
    """Where a backend reports failed operations. The service passes its Prometheus metrics
    (``recserve_redis_errors_total{op}``); this package imports no metrics library."""

    def backend_error(self, op: str) -> None: ...


class NullObserver:
    """Counts nothing (tests, the precompute job)."""

    def backend_error(self, op: str) -> None:
        return None


class ListBackend(Protocol):
    """Where lists live. Keys are built by :mod:`listcache.keys`; the backend only stores them."""

    name: str

    def ready(self, marker_key: str) -> bool:
        """May lists of the version whose marker is ``marker_key`` be read from here?"""
        ...

    def get(self, key: str, n_items: int) -> StoredList | None:
        """The list under ``key`` (indices checked against ``n_items``), or None. Never raises."""
        ...

    def set(self, key: str, items: np.ndarray, scores: np.ndarray) -> None:
        """Store one list (write-back on a miss). Never raises."""
        ...

    def set_many(self, lists: Iterable[ListWrite], ttl_s: int) -> int:
        """Store a batch of lists in one round trip; returns the bytes written. Raises WriteError."""
        ...

    def mark_ready(self, marker_key: str, value: bytes, ttl_s: int | None) -> None:
        """Write a version's ``ready`` marker (the last write of a job; ``ttl_s`` None = no TTL, so a
        volatile-* eviction policy never evicts it). Raises WriteError."""
        ...

    def close(self) -> None: ...
