"""Every default of the list-cache contract, in one place.

The service settings (``RECSERVE_REDIS_PREFIX``, ``RECSERVE_REDIS_TTL_S``, …), the
``recserve precompute`` command and the backends all take their defaults from
:data:`DEFAULTS`, so the writer and the reader cannot drift apart on a key prefix or a list
length by editing one of three files.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ListCacheDefaults:
    """Defaults, with the reason for each number."""

    #: first segment of every key: ``{prefix}:{version}:rec:{user_id}``
    prefix: str = "recserve"
    #: seconds a stored list lives (1 day): the precompute job runs after each publish and on a
    #: schedule shorter than this, so a list never outlives two runs.
    ttl_s: int = 86_400
    #: N, the length of stored lists. 100 covers every k a page asks for (default_k is 10)
    #: at 808 bytes per list (8 + 8N; ``python -m benchmarks.precompute_rate``).
    list_size: int = 100
    #: entries of the in-process LRU when no Redis is configured (~50k lists of 100 ≈ 40 MB).
    memory_entries: int = 50_000
    #: users or items per compute call and per Redis pipeline in the precompute job.
    batch_size: int = 256
    #: per-command Redis timeout: a slow Redis must cost less than computing (a few ms).
    socket_timeout_s: float = 0.05
    connect_timeout_s: float = 0.1
    #: consecutive failures that open the circuit breaker, and how long it stays open.
    breaker_failures: int = 3
    breaker_reset_s: float = 5.0
    #: how often the ``ready`` marker is re-checked, so the common path is a single GET.
    ready_check_s: float = 5.0
    #: store lists computed on a miss (Redis: only for versions whose marker exists).
    write_back: bool = True


DEFAULTS = ListCacheDefaults()
