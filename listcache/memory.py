"""The in-process backend: a cachetools LRU of decoded lists, the default when there is no Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
from cachetools import LRUCache

from listcache.backend import ListWrite, StoredList
from listcache.config import DEFAULTS


def _stored(items: np.ndarray, scores: np.ndarray) -> StoredList:
    return np.array(items, np.int32), np.array(scores, np.float32)


class MemoryBackend:
    """cachetools LRU of decoded lists in this process; always ready, filled on misses.

    Always ready because every list in it was computed by this process for the version in its
    key. A lock guards the LRU because cachetools is not thread-safe and the model swap and
    requests may run on different threads. Entries are stored decoded (no encoding cost): they
    never leave the process. TTLs do not apply: the LRU bound is what evicts.
    """

    name = "memory"

    def __init__(self, maxsize: int = DEFAULTS.memory_entries) -> None:
        self._lru: LRUCache[str, StoredList] = LRUCache(maxsize=maxsize)
        self._markers: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def ready(self, marker_key: str) -> bool:
        return True

    def get(self, key: str, n_items: int) -> StoredList | None:
        with self._lock:
            return self._lru.get(key)

    def set(self, key: str, items: np.ndarray, scores: np.ndarray) -> None:
        entry = _stored(items, scores)
        with self._lock:
            self._lru[key] = entry

    def set_many(self, lists: Iterable[ListWrite], ttl_s: int) -> int:
        entries = [(key, _stored(items, scores)) for key, items, scores in lists]
        with self._lock:
            for key, entry in entries:
                self._lru[key] = entry
        return sum(8 + 8 * len(items) for _, (items, _) in entries)  # what the packed blobs would take

    def mark_ready(self, marker_key: str, value: bytes, ttl_s: int | None) -> None:
        with self._lock:
            self._markers[marker_key] = value

    def marker(self, marker_key: str) -> bytes | None:
        """The marker a job wrote here (for tests and operators; readiness does not depend on it)."""
        return self._markers.get(marker_key)

    def __len__(self) -> int:
        return len(self._lru)

    def close(self) -> None:
        with self._lock:
            self._lru.clear()
            self._markers.clear()
