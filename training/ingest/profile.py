"""``recserve data inspect``: validate and profile an interaction file without training."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from training.ingest.build import DataSpec
from training.ingest.log import LogFilters, collapse, read_log

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
Q_NAMES = ("min", "p25", "p50", "p75", "p90", "p99", "max")


def _quantiles(counts: np.ndarray) -> dict[str, float]:
    return {n: float(v) for n, v in zip(Q_NAMES, np.quantile(counts, QUANTILES), strict=True)}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def inspect_file(spec: DataSpec, progress: bool = True) -> dict[str, Any]:
    """The file as it is (rows, ids, duplicates, density, time range, per-user/item quantiles)
    and what training with ``spec.filters`` would drop, counted by reason."""
    log = read_log(spec.interactions, spec.columns, spec.time_required, progress)
    raw = collapse(log, LogFilters(), progress)  # duplicates merged, nothing else dropped
    n_users, n_items = len(log.user_ids), len(log.item_ids)
    pairs = len(raw.users)
    out: dict[str, Any] = {
        "file": str(log.path),
        "format": log.format,
        "columns": raw.report["columns"],
        "rows": log.n_rows,
        "users": n_users,
        "items": n_items,
        "interactions": pairs,
        "duplicates": log.n_rows - pairs,
        "density": pairs / (n_users * n_items),
        "time_range": None,
        "per_user": _quantiles(np.bincount(raw.users)),
        "per_item": _quantiles(np.bincount(raw.items)),
    }
    if log.times is not None:
        out["time_range"] = {"min": _iso(float(log.times.min())), "max": _iso(float(log.times.max()))}
    if log.weights is not None:
        out["weight"] = {"min": float(log.weights.min()), "max": float(log.weights.max())}
    filtered = (
        collapse(log, spec.filters, progress, allow_empty=True) if spec.filters != LogFilters() else raw
    )
    out["would_drop"] = filtered.report["dropped"]
    out["would_keep"] = {k: filtered.report[k] for k in ("interactions", "users", "items")}
    out["emptied_by"] = filtered.report.get("emptied_by")
    out["filters"] = {"min_weight": spec.filters.min_weight, "k_core": spec.filters.k_core}
    return out


def format_profile(p: dict[str, Any]) -> str:
    """The profile as aligned text lines for a terminal."""
    cols = p["columns"]
    lines = [
        f"file        {p['file']} ({p['format']})",
        f"columns     user={cols['user_col']!r} item={cols['item_col']!r} time={cols['time_col']!r}"
        + (f" weight={cols['weight_col']!r}" if cols["weight_col"] else ""),
        f"rows        {p['rows']:,}",
        f"users       {p['users']:,}",
        f"items       {p['items']:,}",
        f"pairs       {p['interactions']:,} distinct (user, item); {p['duplicates']:,} duplicate rows",
        f"density     {p['density']:.6f}",
    ]
    tr = p["time_range"]
    lines.append(
        f"time range  {tr['min']} .. {tr['max']}" if tr else "time range  (no time column: file order)"
    )
    if "weight" in p:
        lines.append(f"weight      {p['weight']['min']:g} .. {p['weight']['max']:g}")
    head = " ".join(f"{n:>6}" for n in Q_NAMES)
    lines.append(f"{'':<16}{head}")
    for key, label in (("per_user", "pairs per user"), ("per_item", "pairs per item")):
        lines.append(f"{label:<16}" + " ".join(f"{p[key][n]:>6.4g}" for n in Q_NAMES))
    f = p["filters"]
    given = ", ".join(
        s
        for s in (
            f"--min-weight {f['min_weight']:g}" if f["min_weight"] is not None else "",
            f"--k-core {f['k_core']}" if f["k_core"] > 1 else "",
        )
        if s
    )
    lines.append(f"training would drop ({given or 'no filters'}):")
    for reason, n in p["would_drop"].items():
        lines.append(f"  {reason:<22}{n:>10,} rows")
    k = p["would_keep"]
    lines.append(f"and keep {k['interactions']:,} interactions, {k['users']:,} users, {k['items']:,} items")
    if p["emptied_by"]:
        lines.append(f"training would fail: no interactions left after {p['emptied_by']}")
    return "\n".join(lines)
