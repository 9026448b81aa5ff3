"""Fixtures for the own-data tests: MovieLens-100K written out as files, and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from recserve.cli import main
from training.movielens import MovieLens100K, data_folder, read_ml100k


@pytest.fixture(scope="session")
def ml_raw() -> MovieLens100K:
    """The shared MovieLens-100K, parsed (skipped when it is not there)."""
    folder = data_folder()
    if not (folder / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {folder} (set RECSERVE_DATA_DIR)")
    return read_ml100k(folder.parent)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``recserve ARGS...`` in process: (exit status, stdout, stderr)."""

    def run(*argv: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
