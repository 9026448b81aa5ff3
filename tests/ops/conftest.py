"""Fixtures of the operations tests: the service's JSON log lines, captured."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from service.logs import handler_for


class Captured:
    """JSON log lines written by the root handler during a test."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def of(self, logger: str) -> list[dict]:
        return [line for line in self.lines() if line["logger"] == logger]


@pytest.fixture
def logs() -> Iterator[Captured]:
    """The service's JSON handler on the root logger at DEBUG, removed afterwards."""
    stream = io.StringIO()
    handler = handler_for(stream, "json")
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
