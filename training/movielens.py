"""MovieLens-100K: raw files → :class:`~training.data.InteractionData` with real side features.

The files are read where they lie (``$RECSERVE_DATA_DIR/ml-100k``, by default ``../shared/data``
next to the repository root); nothing is copied into the repo. Parsing is strict about form (a
malformed row raises :class:`MovieLensError` naming the file and its 1-based line) because a
silently mis-parsed column would poison every number built on it.

Ratings that refer to a user missing from ``u.user`` or an item missing from ``u.item`` are a
different matter: the row is well-formed but cannot be given side features. By default such rows
are skipped and reported (``MovieLens100K.skipped``, a warning naming file and lines); pass
``on_unknown="error"`` to refuse them instead.

Split (the protocol of the issue): implicit positives are ratings ≥ ``min_rating`` (4); per user,
positives are ordered by timestamp (ties by file line, so the order is deterministic) and the
last ``test_fraction`` of them (at least one) is the test set. ``train_time`` keeps the
timestamps of the training rows so the trainer can cut its validation slice from the *end* of
each user's training history rather than at random.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from training.data import InteractionData

log = logging.getLogger("recserve.movielens")

DATA_DIR_ENV = "RECSERVE_DATA_DIR"
FOLDER = "ml-100k"
GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# MovieLens-1M's age groups (<18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+): coarse enough that
# every bucket has users, and the conventional grouping for this family of data sets.
AGE_EDGES = (18, 25, 35, 45, 50, 56)
AGE_BUCKETS = ("age_lt18", "age_18_24", "age_25_34", "age_35_44", "age_45_49", "age_50_55", "age_56plus")


class MovieLensError(ValueError):
    """A missing folder/file or a malformed row; the message names the file and 1-based line."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = None if path is None else Path(path)
        self.line = line


@dataclass
class RawRatings:
    """``u.data`` rows that refer to known users and items, in file order."""

    users: np.ndarray  # external user id (int)
    items: np.ndarray  # external item id (int)
    ratings: np.ndarray
    timestamps: np.ndarray
    lines: np.ndarray  # 1-based line number in u.data


@dataclass
class MovieLens100K:
    """Everything read from the three files, before the split."""

    folder: Path
    ratings: RawRatings
    user_ids: list[int]
    age: np.ndarray
    gender: list[str]
    occupation: list[str]
    item_ids: list[int]
    titles: list[str]
    release_year: np.ndarray  # float, NaN where u.item has no release date
    genres: np.ndarray  # (n_items, 19) 0/1
    skipped: list[int] = field(default_factory=list)  # u.data lines skipped (unknown user/item)


def data_folder(data_dir: Path | str | None = None) -> Path:
    """``<data_dir>/ml-100k``; ``data_dir`` defaults to ``$RECSERVE_DATA_DIR``, then ``../shared/data``."""
    if data_dir is None:
        env = os.environ.get(DATA_DIR_ENV)
        data_dir = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(data_dir) / FOLDER


def _require_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise MovieLensError(
            f"MovieLens-100K folder not found: {folder} — set {DATA_DIR_ENV} to the directory that "
            f"contains {FOLDER}/ (with u.data, u.item, u.user)"
        )
    for name in ("u.data", "u.item", "u.user"):
        if not (folder / name).is_file():
            raise MovieLensError(f"missing {name} in {folder} (set {DATA_DIR_ENV} to another data directory)")


def _int(text: str, what: str, path: Path, line: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise MovieLensError(f"{what} must be an integer, got {text!r}", path, line) from None


def _lines(path: Path, encoding: str = "utf-8"):
    """(1-based line number, line without trailing whitespace) for each non-blank line."""
    with path.open(encoding=encoding, newline="") as fh:
        for no, raw in enumerate(fh, start=1):
            line = raw.rstrip()
            if line:
                yield no, line


def read_users(path: Path) -> tuple[list[int], np.ndarray, list[str], list[str]]:
    """``u.user``: ``id|age|gender|occupation|zip``."""
    ids: list[int] = []
    ages: list[int] = []
    genders: list[str] = []
    occs: list[str] = []
    seen: set[int] = set()
    for no, line in _lines(path, "latin-1"):
        f = line.split("|")
        if len(f) != 5:
            raise MovieLensError(
                f"expected 5 '|'-separated fields (id|age|gender|occupation|zip), got {len(f)}", path, no
            )
        uid = _int(f[0], "user id", path, no)
        age = _int(f[1], "age", path, no)
        if not 1 <= age <= 120:
            raise MovieLensError(f"age must be in 1..120, got {age}", path, no)
        if f[2] not in ("M", "F"):
            raise MovieLensError(f"gender must be 'M' or 'F', got {f[2]!r}", path, no)
        if not f[3]:
            raise MovieLensError("occupation is empty", path, no)
        if uid in seen:
            raise MovieLensError(f"duplicate user id {uid}", path, no)
        seen.add(uid)
        ids.append(uid)
        ages.append(age)
        genders.append(f[2])
        occs.append(f[3])
    if not ids:
        raise MovieLensError("no users", path)
    return ids, np.array(ages, np.int64), genders, occs


def _year(text: str, path: Path, line: int) -> float:
    if not text:
        return float("nan")
    try:
        return float(datetime.strptime(text, "%d-%b-%Y").year)
    except ValueError:
        raise MovieLensError(f"release date must look like 01-Jan-1995, got {text!r}", path, line) from None


def read_items(path: Path) -> tuple[list[int], list[str], np.ndarray, np.ndarray]:
    """``u.item``: ``id|title|release date|video release date|IMDb URL|19 genre flags`` (latin-1)."""
    ids: list[int] = []
    titles: list[str] = []
    years: list[float] = []
    genres: list[list[int]] = []
    seen: set[int] = set()
    n_fields = 5 + len(GENRES)
    for no, line in _lines(path, "latin-1"):
        f = line.split("|")
        if len(f) != n_fields:
            raise MovieLensError(f"expected {n_fields} '|'-separated fields, got {len(f)}", path, no)
        iid = _int(f[0], "item id", path, no)
        flags = f[5:]
        if any(x not in ("0", "1") for x in flags):
            raise MovieLensError(f"genre flags must be 0 or 1, got {'|'.join(flags)!r}", path, no)
        if iid in seen:
            raise MovieLensError(f"duplicate item id {iid}", path, no)
        seen.add(iid)
        ids.append(iid)
        titles.append(f[1])
        years.append(_year(f[2], path, no))
        genres.append([int(x) for x in flags])
    if not ids:
        raise MovieLensError("no items", path)
    return ids, titles, np.array(years, np.float64), np.array(genres, np.float32)


def read_ratings(
    path: Path, known_users: set[int], known_items: set[int], on_unknown: Literal["skip", "error"] = "skip"
) -> tuple[RawRatings, list[int]]:
    """``u.data``: ``user<TAB>item<TAB>rating<TAB>timestamp``; returns rows and skipped line numbers."""
    cols: list[tuple[int, int, int, int, int]] = []
    skipped: list[int] = []
    for no, line in _lines(path):
        f = line.split("\t")
        if len(f) != 4:
            raise MovieLensError(
                f"expected 4 tab-separated fields (user, item, rating, timestamp), got {len(f)}", path, no
            )
        u = _int(f[0], "user id", path, no)
        i = _int(f[1], "item id", path, no)
        r = _int(f[2], "rating", path, no)
        t = _int(f[3], "timestamp", path, no)
        if not 1 <= r <= 5:
            raise MovieLensError(f"rating must be in 1..5, got {r}", path, no)
        if u not in known_users or i not in known_items:
            what = (
                f"user id {u} is not in u.user" if u not in known_users else f"item id {i} is not in u.item"
            )
            if on_unknown == "error":
                raise MovieLensError(what, path, no)
            skipped.append(no)
            continue
        cols.append((u, i, r, t, no))
    if not cols:
        raise MovieLensError("no ratings", path)
    a = np.array(cols, np.int64)
    return RawRatings(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4]), skipped


def read_ml100k(
    data_dir: Path | str | None = None, on_unknown: Literal["skip", "error"] = "skip"
) -> MovieLens100K:
    """Parse ``u.user``, ``u.item`` and ``u.data`` (see the module docstring for the rules)."""
    folder = data_folder(data_dir)
    _require_folder(folder)
    user_ids, age, gender, occupation = read_users(folder / "u.user")
    item_ids, titles, years, genres = read_items(folder / "u.item")
    ratings, skipped = read_ratings(folder / "u.data", set(user_ids), set(item_ids), on_unknown)
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (" …" if len(skipped) > 10 else "")
        log.warning(
            "%s: skipped %d rating row(s) whose user or item is not in u.user/u.item (lines %s)",
            folder / "u.data",
            len(skipped),
            shown,
        )
    return MovieLens100K(
        folder, ratings, user_ids, age, gender, occupation, item_ids, titles, years, genres, skipped
    )


def split_by_time(
    users: np.ndarray, timestamps: np.ndarray, tiebreak: np.ndarray, test_fraction: float
) -> np.ndarray:
    """Boolean test mask: per user, the last ``test_fraction`` of rows by time, at least one.

    A user with a single positive therefore has it in test and none in train: such users are
    the demographic cold-start case, and they stay in the evaluation.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.lexsort((tiebreak, timestamps, users))
    u_sorted = users[order]
    starts = np.flatnonzero(np.r_[True, u_sorted[1:] != u_sorted[:-1]])
    ends = np.r_[starts[1:], len(u_sorted)]
    test = np.zeros(len(users), bool)
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        n_out = max(1, round((e - s) * test_fraction))
        test[order[e - n_out : e]] = True
    return test


def age_bucket(age: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.array(AGE_EDGES), age, side="right")


def load_ml100k(
    data_dir: Path | str | None = None,
    min_rating: int = 4,
    test_fraction: float = 0.2,
    on_unknown: Literal["skip", "error"] = "skip",
    raw: MovieLens100K | None = None,
) -> InteractionData:
    """MovieLens-100K as implicit feedback with side features, split per user by time.

    User features: age bucket one-hot, ``is_female``, occupation one-hot, ``log_activity`` (log1p
    of the user's *training* positives, so test interactions never leak into a feature).
    Item features: genre flags and release year (missing → median year); the trainer adds
    training popularity. ``item_tags`` are the genres (so ``tag_affinity`` = user–genre affinity)
    and ``item_attributes["genre"]`` names them for request-time filters.
    ``user_segment`` (age bucket × gender) is what a user without training positives borrows an
    embedding from.
    """
    ml = raw or read_ml100k(data_dir, on_unknown)
    r = ml.ratings
    pos = r.ratings >= min_rating
    uidx = {u: k for k, u in enumerate(ml.user_ids)}
    iidx = {i: k for k, i in enumerate(ml.item_ids)}
    users = np.array([uidx[u] for u in r.users[pos].tolist()], np.int64)
    items = np.array([iidx[i] for i in r.items[pos].tolist()], np.int64)
    times = r.timestamps[pos]
    lines = r.lines[pos]
    # One row per (user, item): keep the latest positive of a pair (u.data has none twice, but a
    # duplicate must not land in both train and test).
    key = users * len(ml.item_ids) + items
    order = np.lexsort((lines, times))[::-1]
    _, first = np.unique(key[order], return_index=True)
    keep = np.sort(order[first])
    users, items, times, lines = users[keep], items[keep], times[keep], lines[keep]
    test = split_by_time(users, times, lines, test_fraction)

    n_users = len(ml.user_ids)
    bucket = age_bucket(ml.age)
    female = np.array([g == "F" for g in ml.gender], np.float32)
    occupations = sorted(set(ml.occupation))
    occ_idx = np.array([occupations.index(o) for o in ml.occupation])
    activity = np.bincount(users[~test], minlength=n_users).astype(np.float32)
    user_features = np.concatenate(
        [
            np.eye(len(AGE_BUCKETS), dtype=np.float32)[bucket],
            female[:, None],
            np.eye(len(occupations), dtype=np.float32)[occ_idx],
            np.log1p(activity)[:, None],
        ],
        axis=1,
    )
    year = ml.release_year.copy()
    year[np.isnan(year)] = np.nanmedian(year)
    item_features = np.concatenate([ml.genres, year[:, None].astype(np.float32)], axis=1)
    genre_names = list(GENRES)
    return InteractionData(
        name="ml-100k",
        user_ids=[str(u) for u in ml.user_ids],
        item_ids=[str(i) for i in ml.item_ids],
        train_users=users[~test],
        train_items=items[~test],
        test_users=users[test],
        test_items=items[test],
        user_features=user_features,
        item_features=item_features,
        item_tags=ml.genres.astype(np.float32),
        user_feature_names=[*AGE_BUCKETS, "is_female", *(f"occ_{o}" for o in occupations), "log_activity"],
        item_feature_names=[*(f"genre_{g}" for g in genre_names), "release_year"],
        tag_names=genre_names,
        item_attributes={"genre": [[genre_names[j] for j in np.flatnonzero(row)] for row in ml.genres]},
        train_time=times[~test].astype(np.int64),
        user_segment=(bucket * 2 + female.astype(np.int64)).astype(np.int64),
    )
