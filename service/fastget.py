"""A fast path for the plain GET forms of ``/recommend`` and ``/similar-items``.

FastAPI resolves a GET's query parameters through its dependency machinery on every request
(annotations inspected, one pydantic validation per parameter): profiled at ~60 % of a cache
hit's CPU (``solve_dependencies``; docs/performance-notes.md, "The request path"). Most
requests are the plain kind, ``?user_id=u1&k=10``, whose checks are a few string tests.

:class:`FastGetRoute` is the route class of those two routers. A route whose endpoint carries a
``fast`` parser (:func:`fast_parser`) first tries it: the parser accepts only query strings it can
check exactly as FastAPI would (ASCII, no percent-escapes or ``+``, each known parameter at most
once, or up to ``MAX_QUERY_IDS`` times for a list; integers, booleans and ``diversity`` in
their plain spellings, within the declared bounds) and returns ``None`` for anything else,
which then takes FastAPI's path, unchanged: every error answer (422 with ``field``, 400, ...) is
still FastAPI's, and the OpenAPI schema is the route's own declaration. Nothing changes either
with API keys configured or tracing on: those requests go through FastAPI's path (the key check
is a route dependency, the server span FastAPI's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from service.limits import MAX_QUERY_IDS
from service.parsing import resolve_k
from service.queries import RecommendQuery, SimilarQuery

MAX_ID = 256
_BOOLS = {b"true": True, b"1": True, b"false": False, b"0": False}
_LISTS = frozenset({"exclude_item_ids", "recent_item_ids"})

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Fast = Callable[[Request], Awaitable[Response | None]]


def split_query(qs: bytes, scalars: frozenset[str], lists: frozenset[str]) -> dict[str, Any] | None:
    """``name → bytes`` (``name → [str, ...]`` for ``lists``), or None when FastAPI must parse it."""
    if not qs.isascii() or b"%" in qs or b"+" in qs:
        return None
    out: dict[str, Any] = {}
    for part in qs.split(b"&"):
        name_b, eq, value = part.partition(b"=")
        if not eq or not value:
            return None
        name = name_b.decode()
        if name in lists:
            given = out.setdefault(name, [])
            if len(given) >= MAX_QUERY_IDS or len(value) > MAX_ID:
                return None
            given.append(value.decode())
        elif name in scalars and name not in out:
            out[name] = value
        else:
            return None  # unknown or repeated: FastAPI's rules (ignore, last wins) apply
    return out


def _int(value: bytes | None) -> int | bool | None:
    """A plain positive integer, ``None`` when absent, ``False`` when not plain."""
    if value is None:
        return None
    if not value.isdigit() or value[0] == 48 or len(value) > 9:  # 48: b"0"
        return False
    return int(value)


def _flag(value: bytes | None, default: bool) -> bool | None:
    if value is None:
        return default
    return _BOOLS.get(value.lower())


def _diversity(value: bytes | None) -> float | None:
    if value is None:
        return 0.0
    head, dot, tail = value.partition(b".")
    if not head.isdigit() or len(head) > 1 or (dot and (not tail.isdigit() or len(tail) > 12)):
        return None
    x = float(value)
    return x if 0.0 <= x <= 1.0 else None


def _plain_id(value: bytes | None) -> str | None:
    if value is None or len(value) > MAX_ID:
        return None
    return value.decode()


def _eligible(request: Request) -> bool:
    state = request.app.state
    return not state.api_keys.enabled and not state.tracing.enabled


_REC_SCALARS = frozenset({"user_id", "k", "exclude_seen", "diversity", "explain"})
_SIM_SCALARS = frozenset({"item_id", "k"})


def recommend_query(request: Request) -> RecommendQuery | None:
    """The query ``recommend_from_query`` would build, or None (FastAPI's path)."""
    if not _eligible(request):
        return None
    got = split_query(request.scope["query_string"], _REC_SCALARS, _LISTS)
    if got is None:
        return None
    user_id, k = _plain_id(got.get("user_id")), _int(got.get("k"))
    exclude_seen, explain = _flag(got.get("exclude_seen"), True), _flag(got.get("explain"), False)
    diversity = _diversity(got.get("diversity"))
    if user_id is None or k is False or exclude_seen is None or explain is None or diversity is None:
        return None
    return RecommendQuery(
        user_id=user_id,
        k=resolve_k(k, request.app.state.settings),  # type: ignore[arg-type]
        exclude_seen=exclude_seen,
        exclude_item_ids=tuple(got.get("exclude_item_ids", ())),
        recent_item_ids=tuple(got.get("recent_item_ids", ())),
        diversity=diversity,
        explain=explain,
    )


def similar_query(request: Request) -> SimilarQuery | None:
    """The query ``similar_from_query`` would build, or None (FastAPI's path)."""
    if not _eligible(request):
        return None
    got = split_query(request.scope["query_string"], _SIM_SCALARS, frozenset({"exclude_item_ids"}))
    if got is None:
        return None
    item_id, k = _plain_id(got.get("item_id")), _int(got.get("k"))
    if item_id is None or k is False:
        return None
    return SimilarQuery(
        item_id=item_id,
        k=resolve_k(k, request.app.state.settings),  # type: ignore[arg-type]
        exclude_item_ids=tuple(got.get("exclude_item_ids", ())),
    )


def fast_parser(fast: Fast) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark an endpoint: ``fast(request)`` answers it when it can (else None: FastAPI's path)."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.fast = fast  # type: ignore[attr-defined]
        return endpoint

    return mark


class FastGetRoute(APIRoute):
    """An ``APIRoute`` whose endpoint may answer plain requests without FastAPI's parameter
    resolution (see the module doc); everything else, schema included, is ``APIRoute``'s."""

    def get_route_handler(self) -> Handler:
        full = super().get_route_handler()
        fast: Fast | None = getattr(self.endpoint, "fast", None)
        if fast is None:
            return full

        async def handler(request: Request) -> Response:
            response = await fast(request)
            return response if response is not None else await full(request)

        return handler
