"""A circuit breaker: an outage of the cache costs a few timeouts, not one per request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from listcache.config import DEFAULTS


class CircuitBreaker:
    """Stop calling a failing dependency for ``reset_after_s`` after ``failure_threshold`` failures.

    Closed: calls go through; consecutive failures are counted. Open: :meth:`allow` says no until
    ``reset_after_s`` has passed, so an outage costs ``failure_threshold`` timeouts, not one per
    request. Half-open: one trial call is let through; success closes the breaker (the service
    recovers by itself), failure re-opens it for another period.

    Hand-written rather than a library (pybreaker): it is 40 lines, takes an injectable clock so
    tests need no sleeping, and wraps no function — the backend records outcomes itself.
    """

    def __init__(
        self,
        failure_threshold: int = DEFAULTS.breaker_failures,
        reset_after_s: float = DEFAULTS.breaker_reset_s,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "open" if self._clock() - self._opened_at < self.reset_after_s else "half-open"

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self.reset_after_s or self._trial_in_flight:
                return False
            self._trial_in_flight = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_in_flight or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial_in_flight = False
