"""Structured logs: one JSON object per line, each carrying the id of the request that logged it.

Why the standard library with a JSON formatter (python-json-logger) rather than structlog: every
module here, and every library under it (uvicorn, redis-py, boto3), already logs through
``logging``. A formatter on the root handler turns all of their lines into JSON and a filter adds
the request id to each, without changing one call site; structlog would need its stdlib bridge
(``ProcessorFormatter``) to render those same foreign records, plus a second logging API for ours.

The request id lives in a :class:`~contextvars.ContextVar` set by
:class:`service.requestlog.RequestContextMiddleware`. Context variables follow the request into
everything it runs, in the event loop and in worker threads (Starlette's threadpool and
``asyncio.to_thread`` copy the context), so a cache or store error logged deep in the pipeline
carries the id with no parameter passed down.

A line looks like (``recserve serve``, ``RECSERVE_LOG_FORMAT=json``)::

    {"level": "INFO", "logger": "recserve.access", "message": "request", "method": "GET",
     "path": "/recommend", "status": 200, "duration_ms": 3.1, "model_version": "2026…",
     "request_id": "5f0c…", "time": "2026-11-26T05:50:01.123456+00:00"}
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any, Literal

request_id_var: ContextVar[str | None] = ContextVar("recserve_request_id", default=None)

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request is being handled.

    Installed on the handler, not on loggers, so records of any logger (ours, uvicorn's, redis')
    get it. Records logged outside a request (startup, the store poller) get ``-``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


def _json_formatter() -> logging.Formatter:
    """python-json-logger's orjson formatter (orjson is already a dependency): ``level``,
    ``logger``, ``message``, ISO-8601 UTC ``time``, every ``extra=`` field, and ``exc_info`` as
    one string holding the traceback."""
    from pythonjsonlogger.orjson import OrjsonFormatter

    return OrjsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def make_formatter(fmt: LogFormat) -> logging.Formatter:
    if fmt == "json":
        return _json_formatter()
    return logging.Formatter(TEXT_FORMAT)


def logging_config(level: str = "info", fmt: LogFormat = "json") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for ``recserve serve``, given to uvicorn as its
    ``log_config`` so that every worker process applies it too (``--workers N`` spawns them).

    One handler on the root logger (stderr); uvicorn's own loggers propagate to it instead of
    printing in their own format. uvicorn's access log is replaced by the service's
    (``recserve.access``, see :mod:`service.requestlog`), which knows the request id and model.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": {"()": make_formatter, "fmt": fmt}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
            "faiss": {"level": "WARNING"},
        },
    }


def handler_for(stream: Any, fmt: LogFormat = "json") -> logging.Handler:
    """A stream handler formatting like ``recserve serve`` does (for tests and embedding)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(fmt))
    handler.addFilter(RequestIdFilter())
    return handler
