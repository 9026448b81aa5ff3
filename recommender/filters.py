"""Request-time item filters: attribute include/exclude lists → a boolean mask over the catalogue.

A bundle carries ``item_attributes`` (attribute name → each item's list of values, e.g.
``{"category": [["cat3"], ["cat1", "cat5"], …]}``). Filtering is done with masks rather than
per-item Python checks: :class:`AttributeIndex` inverts the lists once per model (value → item
indices), so a request's filter costs one small ``np.zeros`` plus a few fancy-index assignments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


class UnknownAttribute(ValueError):
    """A filter names an attribute the model does not carry (a client error, not a crash)."""

    def __init__(self, attribute: str, side: str, known: Sequence[str]) -> None:
        self.attribute, self.side, self.known = attribute, side, list(known)
        names = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown item attribute {attribute!r}; this model carries: {names}")


@dataclass(frozen=True)
class ItemFilter:
    """``include``: for every attribute listed, an item must have at least one of the values.
    ``exclude``: an item having any listed value of any listed attribute is dropped.

    Attributes are ANDed, values within one attribute ORed — the usual shop-facet semantics
    ("category is books or music, and format is not audio").
    """

    include: Mapping[str, Sequence[str]] = field(default_factory=dict)
    exclude: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.include) or bool(self.exclude)


class AttributeIndex:
    """Inverted index of ``item_attributes``: for each attribute, value → sorted item indices."""

    def __init__(self, item_attributes: Mapping[str, Sequence[Sequence[str]]], n_items: int) -> None:
        self.n_items = n_items
        self._index: dict[str, dict[str, np.ndarray]] = {}
        for name, per_item in item_attributes.items():
            if len(per_item) != n_items:
                raise ValueError(f"attribute {name!r} has {len(per_item)} rows, the catalogue {n_items}")
            lists: dict[str, list[int]] = {}
            for item, values in enumerate(per_item):
                for v in values:
                    lists.setdefault(str(v), []).append(item)
            self._index[name] = {v: np.asarray(ix, dtype=np.int64) for v, ix in lists.items()}

    @property
    def attributes(self) -> list[str]:
        return list(self._index)

    def values(self, attribute: str) -> list[str]:
        return sorted(self._index.get(attribute, {}))

    def _items_with_any(self, attribute: str, values: Sequence[str], side: str) -> np.ndarray:
        table = self._index.get(attribute)
        if table is None:
            raise UnknownAttribute(attribute, side, self.attributes)
        mask = np.zeros(self.n_items, dtype=bool)
        for v in values:
            ix = table.get(v)
            if ix is not None:
                mask[ix] = True
        return mask

    def mask(self, item_filter: ItemFilter | None) -> np.ndarray | None:
        """Allowed items as a bool (n_items,) mask, or ``None`` when the filter allows everything.

        Unknown *values* simply match nothing (a new category is not an error); an unknown
        *attribute* raises :class:`UnknownAttribute` — it is almost always a typo.
        """
        if not item_filter:
            return None
        allowed = np.ones(self.n_items, dtype=bool)
        for name, values in item_filter.include.items():
            allowed &= self._items_with_any(name, values, "include")
        for name, values in item_filter.exclude.items():
            allowed &= ~self._items_with_any(name, values, "exclude")
        return allowed
