"""The reader's view of the lists: keys, the ``ready`` gate and the answer rule over one backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from listcache.backend import ListBackend, StoredList
from listcache.config import DEFAULTS
from listcache.keys import list_key, ready_key
from listcache.rule import answer_from_cached

Result = Literal["hit", "miss", "unavailable"]


@dataclass(frozen=True)
class Lookup:
    """Outcome of :meth:`ListCache.lookup`: on a hit, ``items``/``scores`` are the answer (k long)."""

    result: Result
    items: np.ndarray | None = None
    scores: np.ndarray | None = None

    @property
    def hit(self) -> bool:
        return self.result == "hit"


class ListCache:
    """Look up a post-filtered list, store a computed one; for one backend and key prefix.

    ``list_size`` (N) is how long stored lists are. Reading requires the version's ``ready``
    marker (the in-process backend is always ready). Storing happens only with ``write_back``
    and while the version is ready: that repairs evicted or expired Redis keys without ever
    writing lists for a version the precompute job has not covered.

    Which requests may use the cache, and how many items to compute on a miss, are the caller's
    rules (the service's ``get_or_compute``); this class never raises on a backend failure.
    """

    def __init__(
        self,
        backend: ListBackend,
        prefix: str = DEFAULTS.prefix,
        list_size: int = DEFAULTS.list_size,
        write_back: bool = DEFAULTS.write_back,
    ) -> None:
        if list_size < 1:
            raise ValueError(f"list_size must be >= 1, got {list_size}")
        self.backend = backend
        self.prefix = prefix
        self.list_size = list_size
        self.write_back = write_back

    def lookup(
        self,
        kind: str,
        version: str,
        key_id: str,
        n_items: int,
        k: int,
        excluded: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> Lookup:
        """The top ``k`` of the stored list after ``excluded`` (item indices) and ``allowed`` (mask)."""
        key = self.read_key(kind, version, key_id)
        if key is None:
            return Lookup("unavailable")
        return self.answer(self.backend.get(key, n_items), k, excluded, allowed)

    def read_key(self, kind: str, version: str, key_id: str) -> str | None:
        """The key :meth:`lookup` reads, or None when the version is not ready (``unavailable``).
        With :meth:`answer`, :meth:`lookup` in two halves, so a caller can read many keys at once
        (:meth:`get_many`)."""
        if not self.backend.ready(ready_key(self.prefix, version)):
            return None
        return list_key(self.prefix, version, kind, key_id)

    def get_many(self, keys: list[str], n_items: int) -> list[StoredList | None]:
        """Read many keys: one round trip when the backend can (``get_many``), else one each."""
        many = getattr(self.backend, "get_many", None)
        if many is not None:
            return many(keys, n_items)  # type: ignore[no-any-return]
        return [self.backend.get(key, n_items) for key in keys]

    @staticmethod
    def answer(
        entry: StoredList | None,
        k: int,
        excluded: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> Lookup:
        """The second half of :meth:`lookup`: the answer from what was read."""
        if entry is None:
            return Lookup("miss")
        found = answer_from_cached(entry[0], entry[1], k, excluded, allowed)
        if found is None:
            return Lookup("miss")
        return Lookup("hit", found[0], found[1])

    def store(self, kind: str, version: str, key_id: str, items: np.ndarray, scores: np.ndarray) -> bool:
        """Write back a full top-N list computed on a miss; True if it was written (or attempted)."""
        if not self.write_back or not self.backend.ready(ready_key(self.prefix, version)):
            return False
        self.backend.set(list_key(self.prefix, version, kind, key_id), items, scores)
        return True

    def close(self) -> None:
        self.backend.close()
