"""What can go wrong in serving a request, as plain exceptions (no HTTP in here).

``service/errors.py`` maps each class to a status code and the one error body; the rest of the
service raises these and never thinks about HTTP::

    ServingError                     code          field
    ├── NoModel                      no_model      -        nothing loaded yet (503)
    ├── EventStoreUnavailable        event_store_unavailable  the feedback database (503)
    ├── InvalidRequest                                      a request the service refuses (422)
    │   ├── KTooLarge                validation_error  k
    │   ├── BatchTooLarge            batch_too_large   user_ids / events
    │   ├── UnknownEventType         unknown_event_type type / events.<i>.type
    │   └── UnknownFilterAttribute   unknown_attribute item_filter.<side>.<attribute>
    └── NotFound                                            an id the model does not know (404)
        ├── UnknownUser              unknown_user      user_id / user_ids.<i>
        └── UnknownItem              unknown_item      item_id
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class: ``code`` is the machine-readable error code, ``field`` the request field at fault."""

    code = "error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NoModel(ServingError):
    code = "no_model"

    def __init__(self) -> None:
        super().__init__("no model is loaded yet; see /readyz")


class EventStoreUnavailable(ServingError):
    """The event store cannot take the events (unreachable, no schema): nothing was stored."""

    code = "event_store_unavailable"


class InvalidRequest(ServingError):
    code = "validation_error"


class KTooLarge(InvalidRequest):
    def __init__(self, k: int, max_k: int) -> None:
        super().__init__(f"k: must be <= {max_k} (max_k), got {k}", "k")


class BatchTooLarge(InvalidRequest):
    code = "batch_too_large"

    def __init__(
        self,
        size: int,
        limit: int,
        field: str = "user_ids",
        what: str = "users",
        setting: str = "max_batch_size",
    ) -> None:
        super().__init__(f"{field}: at most {limit} {what} per batch ({setting}), got {size}", field)


class UnknownEventType(InvalidRequest):
    code = "unknown_event_type"

    def __init__(self, given: str, known: tuple[str, ...], field: str) -> None:
        super().__init__(f"{field}: {given!r} is not one of the feedback_types {', '.join(known)}", field)


class UnknownFilterAttribute(InvalidRequest):
    code = "unknown_attribute"

    def __init__(self, message: str, side: str, attribute: str) -> None:
        super().__init__(message, f"item_filter.{side}.{attribute}")


class NotFound(ServingError):
    code = "not_found"


class UnknownUser(NotFound):
    code = "unknown_user"

    def __init__(self, user_id: str, version: str, field: str) -> None:
        super().__init__(
            f"user_id {user_id!r} is not known to model {version} and no known recent_item_ids were given",
            field,
        )


class UnknownItem(NotFound):
    code = "unknown_item"

    def __init__(self, item_id: str, version: str) -> None:
        super().__init__(f"item_id {item_id!r} is not known to model {version}", "item_id")
