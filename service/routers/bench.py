"""``/bench/baseline``: a constant answer through the same app, the benchmark's yardstick.

It passes the same middleware, error handlers and JSON response class as the real endpoints but
does no work, so "throughput as a share of the baseline" isolates what recommending costs from
what HTTP + ASGI + the framework cost on the same machine at the same moment. Registered only
when ``RECSERVE_BENCH_ENDPOINTS`` is true.
"""

from __future__ import annotations

from fastapi import APIRouter

from service.responses import FastJSONResponse

router = APIRouter(tags=["benchmark"], include_in_schema=False)

_BODY = {"status": "ok", "items": []}


@router.get("/bench/baseline")
async def baseline() -> FastJSONResponse:
    """Constant JSON; no model, no validation."""
    return FastJSONResponse(_BODY)
