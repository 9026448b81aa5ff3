"""Loader for the Amazon2014-Health split used by the SL@K paper (1,974 users, 1,200 items).

The data lives outside the repo. Its root is found through one setting: the ``RECSERVE_DATA_DIR`` environment
variable, else ``../shared/data`` relative to the repository root; the dataset is the ``amazon2014-health``
folder under that root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_ENV_VAR = "RECSERVE_DATA_DIR"
DATASET_NAME = "amazon2014-health"
HEADER = ("user_procid", "item_procid")
REPO_ROOT = Path(__file__).resolve().parents[1]


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file, the 1-based line number and the problem."""


class DataDirNotFoundError(FileNotFoundError):
    """The data folder does not exist; the message names ``RECSERVE_DATA_DIR`` and the path tried."""


@dataclass
class HealthData:
    """Train/test interactions as parallel int64 arrays of internal user and item indices."""

    n_users: int
    n_items: int
    train_users: np.ndarray
    train_items: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray


def default_data_root() -> Path:
    """The data root: ``$RECSERVE_DATA_DIR`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env)
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def resolve_health_dir(data_dir: Path | None = None) -> Path:
    """Find the folder holding ``train.tsv``/``test.tsv``.

    ``data_dir`` may be the data root (containing ``amazon2014-health/``) or the dataset folder itself, so the
    same setting works whether the team points it at the shared root or at one dataset.
    """
    root = Path(data_dir) if data_dir is not None else default_data_root()
    for candidate in (root, root / DATASET_NAME):
        if (candidate / "train.tsv").is_file():
            return candidate
    tried = root / DATASET_NAME
    raise DataDirNotFoundError(
        f"Amazon2014-Health data not found: tried {tried} (and {root}). "
        f"Set {DATA_ENV_VAR} to the data root folder that contains '{DATASET_NAME}/train.tsv'."
    )


def read_interactions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``user_procid<TAB>item_procid`` file with header into two int64 arrays.

    Malformed input raises :class:`DataFormatError` naming the file and line, because a silent skip would
    change the evaluation set and make the reproduction figures incomparable with the paper.
    """
    users: list[int] = []
    items: list[int] = []
    with open(path, encoding="utf-8") as handle:
        header = handle.readline()
        if tuple(header.rstrip("\r\n").split("\t")) != HEADER:
            raise DataFormatError(
                f"{path}:1: expected header 'user_procid<TAB>item_procid', got {header.rstrip()!r}"
            )
        for line_no, line in enumerate(handle, start=2):
            stripped = line.rstrip("\r\n")
            if not stripped.strip():
                raise DataFormatError(f"{path}:{line_no}: empty line")
            fields = stripped.split("\t")
            if len(fields) != 2:
                raise DataFormatError(
                    f"{path}:{line_no}: expected 2 tab-separated fields, got {len(fields)}: {stripped!r}"
                )
            try:
                user, item = int(fields[0]), int(fields[1])
            except ValueError:
                raise DataFormatError(
                    f"{path}:{line_no}: user and item ids must be integers, got {stripped!r}"
                ) from None
            if user < 0 or item < 0:
                raise DataFormatError(f"{path}:{line_no}: negative id in {stripped!r}")
            users.append(user)
            items.append(item)
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def load_health(data_dir: Path | None = None) -> HealthData:
    """Load the Health train/test split (ids are already contiguous ``procid`` indices)."""
    folder = resolve_health_dir(data_dir)
    train_users, train_items = read_interactions(folder / "train.tsv")
    test_path = folder / "test.tsv"
    if not test_path.is_file():
        raise DataDirNotFoundError(f"{test_path} missing next to train.tsv (data root from {DATA_ENV_VAR})")
    test_users, test_items = read_interactions(test_path)
    n_users = int(max(train_users.max(initial=-1), test_users.max(initial=-1))) + 1
    n_items = int(max(train_items.max(initial=-1), test_items.max(initial=-1))) + 1
    return HealthData(n_users, n_items, train_users, train_items, test_users, test_items)


def split_validation(
    users: np.ndarray, items: np.ndarray, fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``max(1, int(fraction * n_u))`` random training items per user as a validation slice.

    Mirrors the authors' 9:1 per-user split (``IRDataset._split_train_valid``) so hyper-parameters and
    epoch counts are chosen without looking at test. Users with a single interaction keep it in train (a user
    with no training item cannot be embedded meaningfully). Vectorised: one random key per interaction,
    ranked within its user. Returns ``(fit_users, fit_items, valid_users, valid_items)``.
    """
    rng = np.random.default_rng(seed)
    keys = rng.random(len(users))
    order = np.lexsort((keys, users))  # grouped by user, random order within a user
    sorted_users = users[order]
    counts = np.bincount(users, minlength=int(users.max(initial=-1)) + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank_in_user = np.arange(len(users)) - starts[sorted_users]
    n_valid = np.where(counts >= 2, np.maximum(1, (counts * fraction).astype(np.int64)), 0)
    is_valid = rank_in_user < n_valid[sorted_users]
    valid_idx, fit_idx = order[is_valid], order[~is_valid]
    fit_idx.sort()
    valid_idx.sort()
    return users[fit_idx], items[fit_idx], users[valid_idx], items[valid_idx]
