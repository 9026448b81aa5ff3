"""The key scheme: the model version is in every key, so a swap can never serve another model's list.

::

    {prefix}:{version}:rec:{user_id}    a user's top-N recommendations (seen items excluded)
    {prefix}:{version}:sim:{item_id}    an item's top-N similar items (the item itself excluded)
    {prefix}:{version}:ready            the marker the precompute job writes last
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["rec", "sim"]
KINDS: tuple[Kind, ...] = ("rec", "sim")


def list_key(prefix: str, version: str, kind: str, key_id: str) -> str:
    """``{prefix}:{version}:{kind}:{id}``; ``kind`` is ``rec`` (per user) or ``sim`` (per item)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return f"{prefix}:{version}:{kind}:{key_id}"


def ready_key(prefix: str, version: str) -> str:
    """The marker written last by the precompute job: its presence means the lists are complete."""
    return f"{prefix}:{version}:ready"
