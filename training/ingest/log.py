"""An interaction log file → cleaned (user, item) pairs, with every dropped row counted by reason.

Semantics (documented in docs/data.md):

* Implicit feedback: each row says "this user interacted with this item".
* Duplicates collapse to one pair. Its weight is the number of rows, or with ``weight_col`` the
  sum of their weights; its time is the latest of their times.
* Pairs whose weight is ≤ 0 are not positive feedback and are dropped (``non_positive_weight``);
  with ``min_weight``, pairs whose weight is below it are dropped (``below_min_weight``).
* With ``k_core`` = k, users and items with fewer than k pairs are removed, repeatedly, until every
  remaining user and item has at least k (``k_core``).

Every row of the file ends up in exactly one bucket of the report: kept (one per pair), merged
into another row of its pair (``duplicate_merged``), or dropped for one of the reasons above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from training.ingest.columns import id_column, number_column, time_column
from training.ingest.reader import DataError, Locator, read_table


@dataclass(frozen=True)
class LogColumns:
    """Which columns of the file hold what. ``time_col`` None: no times, file order stands in."""

    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str | None = "timestamp"
    weight_col: str | None = None


@dataclass(frozen=True)
class LogFilters:
    min_weight: float | None = None
    k_core: int = 0


@dataclass
class RawLog:
    """The file's rows as dense codes, in file order."""

    path: Path
    format: str
    columns: LogColumns
    users: np.ndarray
    items: np.ndarray
    user_ids: list[str]
    item_ids: list[str]
    times: np.ndarray | None  # epoch seconds
    weights: np.ndarray | None
    locator: Locator

    @property
    def n_rows(self) -> int:
        return len(self.users)


@dataclass
class Pairs:
    """Distinct (user, item) pairs after collapsing and filtering; ids compacted to those kept."""

    users: np.ndarray
    items: np.ndarray
    weight: np.ndarray
    time: np.ndarray  # latest time of the pair (its last row's index when the file has no times)
    first_row: np.ndarray  # 0-based data row of the pair's first occurrence: a stable tie-break
    user_ids: list[str]
    item_ids: list[str]
    report: dict[str, Any] = field(default_factory=dict)


def read_log(path: str | Path, columns: LogColumns, time_required: bool, progress: bool = True) -> RawLog:
    """Read and convert the interaction columns. ``time_required``: the time column was asked for
    explicitly, so its absence is an error rather than "no times"."""
    time_col, weight_col = columns.time_col, columns.weight_col
    wanted = [columns.user_col, columns.item_col, *(c for c in (weight_col,) if c)]
    if time_col is not None and time_required:
        wanted.append(time_col)
    optional = (time_col,) if time_col is not None and not time_required else ()
    table, loc = read_table(path, wanted, optional, progress)
    fmt = loc.fmt
    if time_col not in table.column_names:
        time_col = None  # only the default name can be absent: run without times
    if table.num_rows == 0:
        raise DataError(f"{fmt.path}: no data rows")
    try:
        users, user_ids = id_column(table, columns.user_col, "user id", loc)
        items, item_ids = id_column(table, columns.item_col, "item id", loc)
        times = time_column(table, time_col, loc) if time_col else None
        weights = number_column(table, columns.weight_col, "weight", loc) if columns.weight_col else None
    except pa.ArrowException as exc:  # a case the conversions do not foresee: still one line, named
        raise DataError(f"{fmt.path}: cannot be read as {fmt.label} ({exc})") from exc
    del table
    pa.default_memory_pool().release_unused()  # the text columns are done with: give the memory back
    used = LogColumns(columns.user_col, columns.item_col, time_col, columns.weight_col)
    return RawLog(Path(path), fmt.label, used, users, items, user_ids, item_ids, times, weights, loc)


def _k_core(users: np.ndarray, items: np.ndarray, k: int, n_users: int, n_items: int) -> np.ndarray:
    """Boolean keep-mask over pairs: the k-core of the bipartite user–item graph."""
    keep = np.ones(len(users), bool)
    while True:
        uc = np.bincount(users[keep], minlength=n_users)
        ic = np.bincount(items[keep], minlength=n_items)
        drop = keep & ((uc[users] < k) | (ic[items] < k))
        if not drop.any():
            return keep
        keep &= ~drop


def _pair_time_order(key: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Row order by pair, then time, then file position: ``np.lexsort((rows, time, key))``, as two
    stable argsorts (1.5x faster on 10M rows), and one when the log is already in time order."""
    if len(time) < 2 or bool((time[1:] >= time[:-1]).all()):
        return np.argsort(key, kind="stable")
    by_time = np.argsort(time, kind="stable")
    return by_time[np.argsort(key[by_time], kind="stable")]


def collapse(log: RawLog, filters: LogFilters, progress: bool = True, allow_empty: bool = False) -> Pairs:
    """Collapse duplicates, apply the filters and count every row's fate (see module docstring).

    A filter that leaves nothing is an error naming it, unless ``allow_empty`` (then the report's
    ``emptied_by`` names it): ``data inspect`` reports what training would do rather than failing.
    """
    steps = tqdm(total=3, desc="collapsing duplicates", disable=not progress, leave=False)
    n_items = len(log.item_ids)
    key = log.users * n_items + log.items
    time = log.times if log.times is not None else np.arange(log.n_rows, dtype=np.float64)
    order = _pair_time_order(key, time)
    key_sorted = key[order]
    starts = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
    ends = np.r_[starts[1:], len(order)]
    count = ends - starts
    last = order[ends - 1]
    first_row = np.minimum.reduceat(order, starts)
    weight = np.add.reduceat(log.weights[order], starts) if log.weights is not None else count.astype(float)
    users, items, ptime = log.users[last], log.items[last], time[last]
    steps.update()

    dropped = {"duplicate_merged": int(log.n_rows - len(starts))}
    emptied_by: list[str] = []

    def drop(reason: str, gone: np.ndarray, why: str) -> np.ndarray:
        # Rows of a dropped pair count under the drop reason, not as merged duplicates.
        dropped[reason] = int(count[gone].sum())
        dropped["duplicate_merged"] -= int((count[gone] - 1).sum())
        still = keep & ~gone
        if keep.any() and not still.any():
            emptied_by.append(why)
            if not allow_empty:
                raise DataError(f"{log.path}: no interactions left after {why}")
        return still

    keep = np.ones(len(starts), bool)
    keep = drop("non_positive_weight", weight <= 0, f"dropping pairs whose weight is <= 0 (all {len(keep)})")
    if filters.min_weight is not None:
        why = f"--min-weight {filters.min_weight:g}: the largest pair weight is {weight.max():g}"
        keep = drop("below_min_weight", keep & (weight < filters.min_weight), why)
    steps.update()
    if filters.k_core > 1:
        core = np.zeros(len(keep), bool)
        core[keep] = _k_core(users[keep], items[keep], filters.k_core, len(log.user_ids), n_items)
        why = (
            f"--k-core {filters.k_core}: no set of users and items each with >= {filters.k_core} interactions"
        )
        keep = drop("k_core", keep & ~core, why)
    steps.update()
    steps.close()
    users, items = users[keep], items[keep]
    # Compact the ids to those still present (in first-appearance order), in O(rows).
    u_keep = np.flatnonzero(np.bincount(users, minlength=len(log.user_ids)))
    i_keep = np.flatnonzero(np.bincount(items, minlength=n_items))
    u_new = np.zeros(len(log.user_ids), np.int64)
    u_new[u_keep] = np.arange(len(u_keep))
    i_new = np.zeros(n_items, np.int64)
    i_new[i_keep] = np.arange(len(i_keep))
    pairs = Pairs(
        users=u_new[users],
        items=i_new[items],
        weight=weight[keep],
        time=ptime[keep],
        first_row=first_row[keep],
        user_ids=[log.user_ids[u] for u in u_keep.tolist()],
        item_ids=[log.item_ids[i] for i in i_keep.tolist()],
    )
    pairs.report = {
        "file": str(log.path),
        "format": log.format,
        "columns": asdict(log.columns),
        "rows": log.n_rows,
        "dropped": dropped,
        "interactions": len(pairs.users),
        "users": len(pairs.user_ids),
        "items": len(pairs.item_ids),
    }
    if emptied_by:
        pairs.report["emptied_by"] = emptied_by[0]
    return pairs


def _user_time_order(pairs: Pairs) -> np.ndarray:
    """Pair order by user, then time, then first appearance: ``np.lexsort((first_row, time, users))``.

    ``load_pairs`` has already put the pairs in (time, first_row) order; then one stable argsort
    by user gives the same order, about 4x faster than the three-key lexsort on 4M pairs (checked
    in O(n) first, so any input order stays correct)."""
    t, r = pairs.time, pairs.first_row
    ordered = len(t) < 2 or bool(((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (r[1:] > r[:-1]))).all())
    if ordered:
        return np.argsort(pairs.users, kind="stable")
    return np.lexsort((r, t, pairs.users))


def split_by_time(pairs: Pairs, test_fraction: float, progress: bool = True) -> np.ndarray:
    """Boolean test mask: per user, the last ``test_fraction`` of pairs by time (at least one) is
    test; a user with a single pair keeps it in train, so every user has a training history.
    Ties in time are broken by first appearance in the file."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"--test-fraction must be in (0, 1), got {test_fraction}")
    with tqdm(total=2, desc="splitting by time", disable=not progress, leave=False) as bar:
        order = _user_time_order(pairs)
        u_sorted = pairs.users[order]
        starts = np.flatnonzero(np.r_[True, u_sorted[1:] != u_sorted[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        bar.update()
        n_test = np.where(sizes >= 2, np.maximum(1, np.round(sizes * test_fraction)), 0).astype(np.int64)
        pos = np.arange(len(order)) - np.repeat(starts, sizes)  # position within the user's history
        test = np.zeros(len(order), bool)
        test[order] = pos >= np.repeat(sizes - n_test, sizes)
        bar.update()
    return test
