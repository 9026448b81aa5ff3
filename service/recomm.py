"""``recomm_id``: one per served list, carrying what a click on it should be credited to.

Format: ``<code><16 hex>.<model version>``, e.g. ``p3f9c2a1b0d4e5f67.20261126T043732331779Z-48e8``:
one letter for the strategy that produced the list, 64 random bits (unique per answer), then
the model version (which may itself contain dots, so it is everything after the first one).
Self-describing, so crediting feedback needs no lookup table, no Redis and no state shared
between replicas, and works for lists served before a restart. A client can forge one, which
only moves counters: versions are credited by name only when this process has served them
(else ``other``), so label cardinality stays bounded.
"""

from __future__ import annotations

import secrets

CODES = {
    "personalized": "p",
    "recent_items": "r",
    "popularity": "c",  # "c" for cold start
    "similar_items": "s",
    "batch": "b",  # a /recommend/batch answer as a whole; each result has its own id
}
STRATEGIES = {code: name for name, code in CODES.items()}
_HEX = frozenset("0123456789abcdef")


def new_recomm_id(version: str, strategy: str) -> str:
    return f"{CODES[strategy]}{secrets.token_hex(8)}.{version}"


def parse_recomm_id(recomm_id: str) -> tuple[str, str] | None:
    """(model version, strategy) of an id this module made, or None for anything else."""
    head, dot, version = recomm_id.partition(".")
    if not dot or not version or len(head) != 17 or head[0] not in STRATEGIES or not set(head[1:]) <= _HEX:
        return None
    return version, STRATEGIES[head[0]]
