"""``/admin/*``: operator actions. Mounted only when ``RECSERVE_ADMIN_TOKEN`` is set.

Without a configured token these routes do not exist (404), so an unconfigured deployment
cannot be reloaded by anyone who can reach it.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header

from service.deps import HolderDep, SettingsDep
from service.errors import APIError
from service.responses import FastJSONResponse
from service.schemas import ErrorResponse


def require_token(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """``Authorization: Bearer <RECSERVE_ADMIN_TOKEN>``, compared in constant time."""
    expected = settings.admin_token.get_secret_value() if settings.admin_token else ""
    scheme, _, given = (authorization or "").partition(" ")
    if (
        not expected
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise APIError(
            401, "unauthorized", "a valid 'Authorization: Bearer <admin token>' is required", "authorization"
        )


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_token)])
ERRORS = {401: {"model": ErrorResponse}, 409: {"model": ErrorResponse}}


@router.post("/reload", responses=ERRORS)
async def reload(holder: HolderDep) -> FastJSONResponse:
    """Load the store's CURRENT now (also a version refused before) and swap it in if it is good.

    200 with ``swapped`` false when CURRENT is already serving; 409 ``model_refused`` when the
    bundle failed to load: the previous model keeps serving.
    """
    before = holder.current.version if holder.current else None
    result = await asyncio.to_thread(holder.load_current, True)
    if result.error is not None:
        raise APIError(409, "model_refused", f"{result.reason}: {result.error}")
    return FastJSONResponse(
        {
            "swapped": result.swapped,
            "model_version": result.version,
            "previous_version": before,
            "swap_seconds": result.seconds,
        },
        headers={"X-Model-Version": result.version or ""},
    )
