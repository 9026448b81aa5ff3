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

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
)

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


RECOMM_ID_DOC = (
    "Unique id of this served list: send it back with feedback on its items (POST /feedback) to "
    "credit them to the list's model version and strategy."
)


class _ListResponse(BaseModel):
    model_version: str
    recomm_id: str = Field(description=RECOMM_ID_DOC)
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
    recomm_id: str = Field(
        description="Unique id of this answer; each result carries its own recomm_id for its list."
    )
    results: list[RecommendResponse] = Field(description="One entry per requested user, in order.")


class SimilarResponse(_ListResponse):
    item_id: str


# -- POST /feedback ---------------------------------------------------------------------------------


def _utf8(value: str) -> str:
    """Refuse lone surrogates (JSON can carry them, UTF-8 databases cannot store them)."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise ValueError("not valid Unicode text (lone surrogate)") from exc
    return value


#: ids an event carries: no NUL (PostgreSQL text cannot hold it), valid Unicode
EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00]*$"), AfterValidator(_utf8)
]
#: Unix seconds up to 2100-01-01
MAX_TIMESTAMP = 4_102_444_800.0
#: the two body forms, told apart by an ``events`` key; the tags are stripped from error fields
UNION_TAGS = ("single-event", "event-batch")


class FeedbackEvent(BaseModel):
    """One interaction. Users and items the model does not know are accepted (that is how new
    ones arrive) and counted."""

    model_config = STRICT
    user_id: EventId
    item_id: EventId
    type: str = Field(min_length=1, max_length=32, description="One of the service's feedback_types.")
    timestamp: float | None = Field(
        None,
        ge=0,
        le=MAX_TIMESTAMP,
        allow_inf_nan=False,
        description="Unix seconds; omitted = when received.",
    )
    event_id: EventId | None = Field(None, description="Idempotency key: the same event_id is stored once.")
    recomm_id: EventId | None = Field(None, description="The recomm_id of the list the item was shown in.")
    weight: float = Field(1.0, ge=-1e6, le=1e6, allow_inf_nan=False, description="Kept for trainers.")


class FeedbackBatch(BaseModel):
    model_config = STRICT
    events: list[FeedbackEvent] = Field(
        min_length=1, description="At most feedback_max_batch events; one bad event refuses them all."
    )


def _feedback_form(value: object) -> str:
    return UNION_TAGS[1] if isinstance(value, dict) and "events" in value else UNION_TAGS[0]


FeedbackBody = Annotated[
    Annotated[FeedbackEvent, Tag(UNION_TAGS[0])] | Annotated[FeedbackBatch, Tag(UNION_TAGS[1])],
    Discriminator(_feedback_form),
]


class FeedbackResponse(BaseModel):
    accepted: int = Field(description="Events stored now (committed before this answer).")
    duplicates: int = Field(description="Events whose event_id was already stored (stored once).")
    unknown_users: int = Field(description="Accepted events whose user the serving model does not know.")
    unknown_items: int = Field(description="Accepted events whose item the serving model does not know.")
