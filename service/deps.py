"""``Annotated`` dependency aliases: routers declare what they need, the app state provides it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.metrics import Metrics
from service.pipeline import ServingPipeline
from service.settings import Settings
from service.state import ModelHolder


def _pipeline(request: Request) -> ServingPipeline:
    return request.app.state.pipeline


def _holder(request: Request) -> ModelHolder:
    return request.app.state.holder


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


PipelineDep = Annotated[ServingPipeline, Depends(_pipeline)]
HolderDep = Annotated[ModelHolder, Depends(_holder)]
SettingsDep = Annotated[Settings, Depends(_settings)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
