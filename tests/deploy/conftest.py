"""Fixtures of the deployment tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from deploy.helpers import stop


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; all are stopped at teardown, last started first."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in reversed(procs):
        stop(proc)
