"""What serving a query produces, still in internal item indices; ``service/presenter.py`` turns it
into a response body (external ids, reasons, ``complete``/``notes``) once, at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from recommender.model import Recommendations

Strategy = Literal["personalized", "recent_items", "popularity"]
Source = Literal["cache", "computed"]


def _no_items() -> np.ndarray:
    return np.zeros(0, np.int64)


@dataclass(frozen=True)
class ListAnswer:
    """One answered list.

    ``strategy`` is None for similar items; ``history`` holds the items an explanation compares
    against (the user's training items or their recent items); ``notes`` say why the answer
    differs from the request (e.g. unknown recent items were ignored).
    """

    rec: Recommendations
    k: int
    source: Source
    strategy: Strategy | None = None
    history: np.ndarray = field(default_factory=_no_items)
    notes: tuple[str, ...] = ()
