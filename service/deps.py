"""``Annotated`` dependency aliases: routers declare what they need, the app state provides it.

The providers are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
thread pool, a hop per request that costs more than the attribute lookup it wraps.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.metrics import Metrics
from service.pipeline import ServingPipeline
from service.settings import Settings
from service.state import ModelHolder


async def _pipeline(request: Request) -> ServingPipeline:
    return request.app.state.pipeline


async def _holder(request: Request) -> ModelHolder:
    return request.app.state.holder


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


PipelineDep = Annotated[ServingPipeline, Depends(_pipeline)]
HolderDep = Annotated[ModelHolder, Depends(_holder)]
SettingsDep = Annotated[Settings, Depends(_settings)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
