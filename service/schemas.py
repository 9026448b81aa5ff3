"""Request and response bodies (the OpenAPI schema clients see at /docs).

Every list and string a client can send has a length bound here, so no request can make the
service do unbounded work; limits that depend on configuration (``max_k``, ``max_batch_size``)
are checked when a request is parsed (``service/parsing.py``) and also written into the served
OpenAPI schema by :func:`service.limits.apply_limits_to_openapi`.

Validation agrees with the schema in both directions (Schemathesis checks it with every check,
``tests/service/test_schemathesis.py``). Request bodies are validated strictly (:data:`STRICT`): a
boolean field takes only ``true``/``false`` and a number field no boolean or string (pydantic's
lax mode would take ``0``, ``"yes"`` and ``false``); an integer field takes any integral JSON
number — ``1.0`` is an integer to JSON Schema — but not ``true``, ``"3"`` or ``2.5`` (:data:`K`).
Filter attribute names the served model does not carry are refused; the served schema lists the
ones it does (``service.limits.apply_limits_to_openapi``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

# Identifier strings: non-empty, bounded. Ids are the data set's own, so no pattern is imposed.
Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]
AttrName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
AttrValues = Annotated[list[Annotated[str, StringConstraints(max_length=256)]], Field(max_length=100)]

MAX_LIST_IDS = 1000
MAX_RECENT_ITEMS = 200


def _integral(value: object) -> object:
    """An integral float (JSON ``1.0``) as the int it denotes; everything else is left to strict
    int validation, which refuses booleans, strings and fractions."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: request bodies: unknown fields refused, JSON types taken as they are (no lax coercion)
STRICT = ConfigDict(extra="forbid", strict=True)

#: ``k``: an integral JSON number >= 1, strictly (``true`` and ``"10"`` are not numbers of items)
K = Annotated[int, Field(ge=1, strict=True), BeforeValidator(_integral)]

Strategy = Literal["personalized", "recent_items", "popularity"]
Source = Literal["cache", "computed"]


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable error code, e.g. 'not_found', 'validation_error'.")
    message: str
    field: str | None = Field(None, description="The request field at fault, where one is.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ItemFilterModel(BaseModel):
    """Item attribute filter. Attributes are ANDed, values within one attribute ORed."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ItemFilter")
    include: dict[AttrName, AttrValues] = Field(
        default_factory=dict,
        max_length=20,
        description="attribute → values: keep only items having at least one of the values "
        'for every attribute listed, e.g. {"category": ["cat1", "cat2"]}.',
    )
    exclude: dict[AttrName, AttrValues] = Field(
        default_factory=dict,
        max_length=20,
        description="attribute → values: drop items having any of these values.",
    )


class _Options(BaseModel):
    """Options shared by single and batch recommendation requests."""

    model_config = STRICT
    k: K | None = Field(
        None, description="How many items to return: 1..max_k; omitted = the service's default_k."
    )
    exclude_seen: bool = Field(
        True, description="Leave out items the user interacted with in training (and recent_item_ids)."
    )
    exclude_item_ids: list[Id] = Field(
        default_factory=list,
        max_length=MAX_LIST_IDS,
        description="Items never to return. Ids the model does not know are ignored.",
    )
    item_filter: ItemFilterModel | None = Field(None, description="Attribute include/exclude lists.")
    diversity: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Maximal Marginal Relevance re-ranking strength: 0 = off, 1 = most varied.",
    )
    explain: bool = Field(False, description="Attach a short reason to every returned item.")


class RecommendRequest(_Options):
    user_id: Id = Field(description="The data set's own user id.")
    recent_item_ids: list[Id] = Field(
        default_factory=list,
        max_length=MAX_RECENT_ITEMS,
        description="Cold start: items a user unknown to the model just interacted with; the user "
        "vector is built from them, oldest first (models with a recent-items feature use the last "
        "ones). Ignored for known users except as exclusions.",
    )


class BatchRecommendRequest(_Options):
    user_ids: list[Id] = Field(
        min_length=1,
        description="Users to answer in one vectorised pass (at most max_batch_size). "
        "Unknown users get the cold-start fallback.",
    )


class SimilarRequest(BaseModel):
    model_config = STRICT
    item_id: Id
    k: K | None = Field(None, description="1..max_k; omitted = default_k.")
    exclude_item_ids: list[Id] = Field(default_factory=list, max_length=MAX_LIST_IDS)
    item_filter: ItemFilterModel | None = None


class Reason(BaseModel):
    text: str = Field(description="A short human-readable reason.")
    similar_to: str | None = Field(
        None, description="The item in the user's history (or recent items) most similar to this one."
    )
    similarity: float | None = Field(None, description="Embedding cosine between the two.")
    retrieval_score: float | None = Field(None, description="Stage-1 (embedding inner product) score.")
    ranker_score: float | None = Field(None, description="Stage-2 ranker score (None without a ranker).")


class ScoredItem(BaseModel):
    item_id: str
    score: float
    reason: Reason | None = Field(None, description="Present when the request set explain=true.")


class _ListResponse(BaseModel):
    model_version: str
    source: Source = "computed"
    items: list[ScoredItem]
    complete: bool = Field(
        description="False when fewer than k items qualified (filters, exclusions, small catalogue)."
    )
    notes: list[str] = Field(default_factory=list, description="Why the answer differs from the request.")


class RecommendResponse(_ListResponse):
    user_id: str
    strategy: Strategy = Field(
        description="personalized: known user; recent_items: built from recent_item_ids; "
        "popularity: the cold-start fallback."
    )


class BatchRecommendResponse(BaseModel):
    model_version: str
    results: list[RecommendResponse] = Field(description="One entry per requested user, in order.")


class SimilarResponse(_ListResponse):
    item_id: str
