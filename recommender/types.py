"""What every stage and strategy hands back, and the optional per-stage stopwatch.

Kept apart from the stages so that each stage module imports only this and its own tools, and a
reader meets the result type before any code that builds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# Seconds spent per stage name ("retrieval", "features", "ranking", "selection", "diversity"),
# summed over the calls that received the same dict: the service turns them into a histogram.
Timings = dict[str, float]


class SpannedTimings(dict[str, float]):
    """Timings that also run each stage inside ``open_span(stage name)``.

    The seam request tracing plugs into (``service/tracing.py`` passes a function that opens an
    OpenTelemetry span), so the stages wrap their real work in a span while this package imports
    nothing of OpenTelemetry. A plain dict (what the service passes with tracing off) or ``None``
    pays for none of it: :func:`timed` makes one ``isinstance`` check per stage.
    """

    __slots__ = ("open_span",)

    def __init__(self, open_span: Callable[[str], AbstractContextManager[object]]) -> None:
        super().__init__()
        self.open_span = open_span


@contextmanager
def timed(timings: Timings | None, name: str) -> Iterator[None]:
    """Add the block's wall time to ``timings[name]``; free when ``timings`` is None (the default).

    With :class:`SpannedTimings`, the block also runs inside the span it opens for ``name``.
    """
    if timings is None:
        yield
        return
    start = time.perf_counter()
    try:
        if isinstance(timings, SpannedTimings):
            with timings.open_span(name):
                yield
        else:
            yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


@dataclass
class Recommendations:
    """One list: internal item indices best first, the final score, and the stage-1 score."""

    items: np.ndarray
    scores: np.ndarray
    retrieval_scores: np.ndarray


class Candidates(NamedTuple):
    """Stage 1's answer for a batch: ``items`` (B, n) int64, ``scores`` (B, n) float32 and
    ``valid`` (B, n) bool. A row with fewer than ``n`` qualifying items is padded (index 0,
    ``valid`` False). A tuple, so ``cand, cscore, valid = retriever.retrieve(...)`` works."""

    items: np.ndarray
    scores: np.ndarray
    valid: np.ndarray


class Queries(NamedTuple):
    """Who the lists are for, in the two forms the stages read: ``emb`` (B, dim) searches the
    index; ``feats`` (B, Fu) and ``profiles`` (B, G) feed the ranker's feature rows."""

    emb: np.ndarray
    feats: np.ndarray
    profiles: np.ndarray
