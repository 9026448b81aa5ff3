"""Request and response bodies (the OpenAPI schema clients see at /docs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable error code, e.g. 'not_found', 'validation_error'.")
    message: str
    field: str | None = Field(None, description="The request field at fault, where one is.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=256, description="The data set's own user id.")
    k: int = Field(10, ge=1, description="How many items to return (at most the configured max_k).")
    exclude_seen: bool = Field(True, description="Leave out items the user interacted with in training.")


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str = Field(min_length=1, max_length=256)
    k: int = Field(10, ge=1)


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RecommendResponse(BaseModel):
    model_version: str
    user_id: str
    source: Literal["cache", "computed"] = "computed"
    items: list[ScoredItem]


class SimilarResponse(BaseModel):
    model_version: str
    item_id: str
    source: Literal["cache", "computed"] = "computed"
    items: list[ScoredItem]
