"""Fixtures for the MovieLens-100K tests: a tiny fabricated ml-100k folder, and the real one.

The fabricated folder has the exact file formats of MovieLens-100K (tab-separated ``u.data``,
``|``-separated latin-1 ``u.item`` and ``u.user``) with a few dozen users, so loader, CLI and
report logic are tested in seconds. Tests that need the real data skip when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.movielens import GENRES, data_folder

OCCUPATIONS = ("artist", "doctor", "engineer", "student", "writer")


def write_ml100k(root: Path, n_users: int = 40, n_items: int = 60, per_user: int = 25, seed: int = 0) -> Path:
    """Write ``root/ml-100k`` with structured random ratings; returns ``root``.

    Users and items fall into two taste groups (by genre), so a model has something to learn.
    """
    rng = np.random.default_rng(seed)
    folder = root / "ml-100k"
    folder.mkdir(parents=True)
    users = []
    for u in range(1, n_users + 1):
        age = int(rng.integers(12, 70))
        users.append(f"{u}|{age}|{'MF'[u % 2]}|{OCCUPATIONS[u % len(OCCUPATIONS)]}|{10000 + u}")
    (folder / "u.user").write_text("\n".join(users) + "\n", encoding="latin-1")
    items = []
    for i in range(1, n_items + 1):
        flags = ["0"] * len(GENRES)
        flags[1 + i % 2] = "1"  # Action or Adventure: the taste group
        flags[5 + i % 3] = "1"
        date = "" if i == n_items else f"01-Jan-{1950 + i % 48}"
        title = "Misérables, Les (1995)" if i == 1 else f"Movie {i} (19{50 + i % 48})"
        items.append(f"{i}|{title}|{date}||http://example.invalid/{i}|" + "|".join(flags))
    (folder / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")
    rows = []
    for u in range(1, n_users + 1):
        chosen = rng.choice(np.arange(1, n_items + 1), size=per_user, replace=False)
        for j, i in enumerate(chosen.tolist()):
            liked = (i % 2) == (u % 2)
            rating = int(rng.integers(4, 6)) if liked else int(rng.integers(1, 4))
            rows.append(f"{u}\t{i}\t{rating}\t{880000000 + 1000 * u + j}")
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def tiny_ml(tmp_path: Path) -> Path:
    """A data dir (the parent of ``ml-100k/``) holding a tiny fabricated MovieLens-100K."""
    return write_ml100k(tmp_path / "data")


@pytest.fixture(scope="session")
def real_ml_dir() -> Path:
    """The shared MovieLens-100K data dir; the test is skipped when it is not there."""
    folder = data_folder()
    if not (folder / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {folder} (set RECSERVE_DATA_DIR)")
    return folder.parent
