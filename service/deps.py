"""``Annotated`` dependency aliases: routers declare what they need, the app state provides it.

The providers are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
thread pool, a hop per request that costs more than the attribute lookup it wraps. Request
parsing (query strings and bodies → domain queries) is in ``service/parsing.py``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.metrics import Metrics
from service.settings import Settings
from service.state import ModelHolder
from service.strategies import Serving


async def _serving(request: Request) -> Serving:
    return request.app.state.serving


async def _holder(request: Request) -> ModelHolder:
    return request.app.state.holder


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


ServingDep = Annotated[Serving, Depends(_serving)]
HolderDep = Annotated[ModelHolder, Depends(_holder)]
SettingsDep = Annotated[Settings, Depends(_settings)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
