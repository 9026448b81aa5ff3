"""External string ids ↔ dense internal indices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


class IdMap:
    """Bidirectional map between a data set's own ids (strings, as clients send them) and rows.

    Every array in a model (embeddings, features) is indexed by the internal position; the API
    speaks only external ids. Keeping the mapping in one small object keeps that boundary sharp.
    """

    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Iterable[str]) -> None:
        self._ids: list[str] = [str(i) for i in ids]
        self._index: dict[str, int] = {ext: pos for pos, ext in enumerate(self._ids)}
        if len(self._index) != len(self._ids):
            raise ValueError("ids must be unique")

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    def index(self, external_id: str) -> int:
        """Internal index of ``external_id``; :class:`KeyError` if unknown."""
        return self._index[external_id]

    def get(self, external_id: str) -> int | None:
        return self._index.get(external_id)

    def external(self, index: int) -> str:
        return self._ids[index]

    def externals(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        ids = self._ids
        return [ids[i] for i in indices]

    @property
    def ids(self) -> list[str]:
        return self._ids
