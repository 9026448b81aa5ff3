"""API keys on the door: ``X-API-Key`` for the list endpoints, a bearer key for ``/metrics``.

Off by default (the demo has no keys). With ``RECSERVE_API_KEYS`` (comma-separated) and/or
``RECSERVE_API_KEYS_FILE`` set, every router wired with :func:`protected_by` in
``service/app.py`` (recommendations, similar items, batch, feedback and the dashboard's data)
answers 401 in the one error shape without a valid key; ``/healthz`` and ``/readyz`` stay open
for probes. The OpenAPI document then declares the ``APIKeyHeader`` security scheme.

* **Constant time.** The given key is hashed (SHA-256) and compared with the digest of *every*
  accepted key with :func:`hmac.compare_digest`, without stopping at a match: neither the length of
  a key, nor how much of it matched, nor which key matched shows in the response time.
* **Rotation without a restart.** The keys file is re-read when its mtime, size or inode change,
  looked at most once a second (one ``stat`` per second, not per request). Rotate by writing the
  new key next to the old one, moving clients, then removing the old line (docs/operations.md).
  A file that cannot be read at start stops the service with its name; one that breaks later
  (removed, a key too short) is logged and the previous keys stay in force: a botched edit
  must not lock every client out, nor open the door.
* **Keys are secrets.** Only an 8-hex-digit id of a key (a prefix of its SHA-256) is ever logged.
  Keys shorter than 16 characters are refused.

Per-key rate limiting is the gateway's job (docs/operations.md has the HAProxy configuration).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.errors import APIError
from service.schemas import ErrorResponse

log = logging.getLogger("recserve.auth")

MIN_KEY_LENGTH = 16
RELOAD_CHECK_S = 1.0


class KeyFileError(ValueError):
    """A keys setting or file that cannot be used; the message names the setting, file and line."""


def parse_keys(text: str, source: str, split_lines: bool = True) -> list[str]:
    """Keys from ``text``: comma- or newline-separated, blank entries and ``#`` comment lines ignored.

    Raises :class:`KeyFileError` naming ``source`` (and the line) for a key under 16 characters.
    """
    keys = []
    lines = text.splitlines() if split_lines else [text]
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("#"):
            continue
        for key in (part.strip() for part in line.split(",")):
            if not key:
                continue
            if len(key) < MIN_KEY_LENGTH:
                where = f"{source} line {number}" if split_lines else source
                raise KeyFileError(f"{where}: API key shorter than {MIN_KEY_LENGTH} characters")
            keys.append(key)
    return keys


def key_id(key: str) -> str:
    """What logs may show of a key: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


class KeyRing:
    """The accepted API keys: inline ones plus a file's, the file re-read when it changes."""

    def __init__(
        self,
        inline: str | None = None,
        path: str | os.PathLike[str] | None = None,
        check_interval_s: float = RELOAD_CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inline = parse_keys(inline, "RECSERVE_API_KEYS", split_lines=False) if inline else []
        self._path = Path(path) if path else None
        self._check_interval_s = check_interval_s
        self._clock = clock
        self._checked_at = clock()
        self._stamp: tuple[int, int, int] | None = None
        self._file_keys: list[str] = []
        self._digests: dict[bytes, str] = {}
        if self._path is not None:
            self._stamp, self._file_keys = self._read()  # unreadable at start: refuse to start
        self._rebuild()

    @classmethod
    def from_settings(cls, settings: Any) -> KeyRing:
        """The keys ``RECSERVE_API_KEYS`` and ``RECSERVE_API_KEYS_FILE`` configure."""
        inline = settings.api_keys.get_secret_value() if settings.api_keys is not None else None
        return cls(inline, settings.api_keys_file)

    @property
    def enabled(self) -> bool:
        """True when keys were configured (an empty keys file still locks the door)."""
        return bool(self._inline) or self._path is not None

    def __len__(self) -> int:
        self._maybe_reload()
        return len(self._digests)

    def check(self, given: str | None) -> str | None:
        """The id of the matching key, or None. Constant time over all keys (see module doc)."""
        self._maybe_reload()
        digest = hashlib.sha256((given or "").encode()).digest()
        match = None
        for known, ident in self._digests.items():
            if hmac.compare_digest(digest, known):  # no break: same work whichever key matches
                match = ident
        return match if given else None

    def _read(self) -> tuple[tuple[int, int, int], list[str]]:
        assert self._path is not None
        source = f"RECSERVE_API_KEYS_FILE {self._path}"
        try:
            st = self._path.stat()
            text = self._path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"{source}: cannot read: {exc}") from exc
        return (st.st_mtime_ns, st.st_size, st.st_ino), parse_keys(text, source)

    def _maybe_reload(self) -> None:
        if self._path is None or self._clock() - self._checked_at < self._check_interval_s:
            return
        self._checked_at = self._clock()
        try:
            st = self._path.stat()
            if (st.st_mtime_ns, st.st_size, st.st_ino) == self._stamp:
                return
            self._stamp, self._file_keys = self._read()
        except (OSError, KeyFileError) as exc:
            if self._stamp is not None:  # log a broken file once, not every second
                log.error("keeping the previous %d API keys: %s", len(self._digests), exc)
            self._stamp = None
            return
        self._rebuild()
        log.info("API keys reloaded from %s: %d keys", self._path, len(self._digests))

    def _rebuild(self) -> None:
        keys = [*self._inline, *self._file_keys]
        self._digests = {hashlib.sha256(k.encode()).digest(): key_id(k) for k in keys}


# -- FastAPI wiring ---------------------------------------------------------------------------------
_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="One of the keys in RECSERVE_API_KEYS / RECSERVE_API_KEYS_FILE.",
)
_metrics_bearer = HTTPBearer(auto_error=False, description="RECSERVE_METRICS_KEY.")

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or unknown X-API-Key."}
}


async def require_api_key(request: Request, key: Annotated[str | None, Security(_api_key_header)]) -> None:
    """Router dependency: 401 unless ``X-API-Key`` is one of the accepted keys.

    Async on purpose: a sync dependency would cost a thread-pool hop on every request.
    """
    ring: KeyRing = request.app.state.api_keys
    ident = ring.check(key)
    if ident is None:
        raise APIError(401, "unauthorized", "a valid X-API-Key header is required", "x-api-key")
    request.scope["recserve.api_key_id"] = ident  # for the access log


def protected_by(ring: KeyRing) -> dict[str, Any]:
    """``include_router`` arguments for a router behind the API keys: the key check and its
    documented 401 when keys are configured, else nothing (so the OpenAPI document of an open demo
    declares no security scheme)."""
    if not ring.enabled:
        return {}
    return {"dependencies": [Security(require_api_key)], "responses": UNAUTHORIZED}


def metrics_dependencies(settings: Any) -> Sequence[DependsParam]:
    """``dependencies=`` for the ``/metrics`` router: ``Authorization: Bearer <RECSERVE_METRICS_KEY>``
    when a key is set (what Prometheus' ``authorization`` scrape option sends)."""
    metrics_key = settings.metrics_key.get_secret_value() if settings.metrics_key is not None else ""
    if not metrics_key:
        return []
    expected = hashlib.sha256(metrics_key.encode()).digest()

    async def require_metrics_key(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_bearer)],
    ) -> None:
        given = hashlib.sha256((creds.credentials if creds else "").encode()).digest()
        if creds is None or not hmac.compare_digest(given, expected):
            raise APIError(
                401,
                "unauthorized",
                "a valid 'Authorization: Bearer <metrics key>' is required",
                "authorization",
            )

    return [Security(require_metrics_key)]
