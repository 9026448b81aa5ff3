"""Domain inputs: one request with every option resolved (defaults applied, k bounded, filter built).

The FastAPI dependencies in :mod:`service.parsing` produce these from GET query strings and POST
bodies alike, so everything after parsing sees one shape per endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from recommender.filters import ItemFilter


@dataclass(frozen=True)
class RecommendQuery:
    user_id: str
    k: int
    exclude_seen: bool = True
    exclude_item_ids: tuple[str, ...] = ()
    item_filter: ItemFilter | None = None
    recent_item_ids: tuple[str, ...] = ()
    diversity: float = 0.0
    explain: bool = False

    @property
    def cacheable(self) -> bool:
        """Can a stored list answer (possibly post-filtered for exclusions and the item filter)?

        Stored lists are a user's top N with seen items excluded; options that change the ranking
        itself (recent items, diversity) or need more than ids and scores (explain) cannot use one.
        """
        return self.exclude_seen and not (self.diversity > 0 or self.explain or self.recent_item_ids)


@dataclass(frozen=True)
class BatchQuery:
    user_ids: tuple[str, ...]
    k: int
    exclude_seen: bool = True
    exclude_item_ids: tuple[str, ...] = ()
    item_filter: ItemFilter | None = None
    diversity: float = 0.0
    explain: bool = False


@dataclass(frozen=True)
class SimilarQuery:
    item_id: str
    k: int
    exclude_item_ids: tuple[str, ...] = ()
    item_filter: ItemFilter | None = None
