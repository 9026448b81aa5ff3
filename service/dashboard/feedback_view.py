"""The dashboard's feedback section: events per type per hour, click-through by model version.

Everything comes from the event store's hourly rollups (``eventstore/rollup.py``), so every
replica shows the same figures and a refresh reads hours × types × versions rows, not the log.

Click-through rate of a model version, over the window (the definition docs/feedback.md gives):

    CTR(v) = events of type ``click`` whose ``recomm_id`` names a list of version v
             ÷ lists of version v served (answers carrying a ``recomm_id``: /recommend,
               each /recommend/batch result, /similar-items), by every replica

Both counts use the same hour window: a click is booked to the hour of its ``timestamp``, a list
to the hour its replica wrote its count (``service/impressions.py``, every 15 s), so a click in
the window's first minutes on a list served just before it counts without its list; over 24 or 48
hours that edge is small. The same ratio is given for every other type (``rates``), e.g.
purchases per list. Events without a ``recomm_id``, and with one not in recserve's format, are
counted per type but credited to no version.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from eventstore import NO_RECOMM_ID, UNRECOGNISED, EventStore, EventStoreError, HourlyCounts, hour_of
from service.exceptions import EventStoreUnavailable
from service.feedback import Feedback
from service.impressions import ServedLists

CTR_TYPE = "click"
HOUR_S = 3600
DEFAULT_HOURS = 48
MAX_HOURS = 168
MAX_VERSIONS = 12
DEFINITION = (
    "CTR = click events whose recomm_id names a list of the version ÷ lists of that version served "
    "(answers with a recomm_id, all replicas), both in the hours shown. Hours are UTC, by the "
    "event's timestamp; lists are booked to the hour their count was written (every 15 s)."
)


def _ordered_types(configured: Sequence[str], found: set[str]) -> list[str]:
    return [*configured, *sorted(found - set(configured))]


def _version_rows(
    credited: dict[str, dict[str, int]], served: dict[str, int], serving: str | None, types: list[str]
) -> list[dict[str, Any]]:
    """One row per version (most lists served first, the serving one always kept); the
    versions beyond ``MAX_VERSIONS`` are summed into one row with ``model_version: null``."""
    versions = set(credited) | set(served)
    ranked = sorted(
        versions, key=lambda v: (v != serving, -served.get(v, 0), -sum(credited.get(v, {}).values()), v)
    )
    shown, rest = ranked[:MAX_VERSIONS], ranked[MAX_VERSIONS:]

    def row(version: str | None, members: list[str]) -> dict[str, Any]:
        lists = sum(served.get(v, 0) for v in members)
        counts = {t: sum(credited.get(v, {}).get(t, 0) for v in members) for t in types}
        return {
            "model_version": version,
            "versions": len(members),
            "serving": version is not None and version == serving,
            "lists_served": lists,
            "credited": counts,
            "rates": {t: (n / lists if lists else None) for t, n in counts.items()},
            "ctr": counts.get(CTR_TYPE, 0) / lists if lists else None,
        }

    rows = [row(v, [v]) for v in shown]
    if rest:
        rows.append(row(None, rest))
    return rows


def summarize(
    counts: HourlyCounts, configured_types: Sequence[str], serving: str | None, now: float
) -> dict[str, Any]:
    """The section's JSON from the rollup rows of one window (pure: tested without a database)."""
    types = _ordered_types(configured_types, {t for _, t, _, _ in counts.events})
    per_hour: dict[int, dict[str, int]] = defaultdict(dict)
    credited: dict[str, dict[str, int]] = defaultdict(dict)
    uncredited: dict[str, dict[str, int]] = {"no_recomm_id": {}, "unrecognised": {}}
    for hour, type_, version, n in counts.events:
        per_hour[hour][type_] = per_hour[hour].get(type_, 0) + n
        if version == NO_RECOMM_ID:
            bucket = uncredited["no_recomm_id"]
        elif version == UNRECOGNISED:
            bucket = uncredited["unrecognised"]
        else:
            bucket = credited[version]
        bucket[type_] = bucket.get(type_, 0) + n
    served: dict[str, int] = defaultdict(int)
    for _, version, n in counts.served:
        served[version] += n
    hours = []
    for hour in range(counts.first_hour, counts.last_hour + 1):
        row = {t: per_hour.get(hour, {}).get(t, 0) for t in types}
        hours.append({"hour": hour * HOUR_S, "counts": row, "total": sum(row.values())})
    totals = {t: sum(h["counts"][t] for h in hours) for t in types}
    return {
        "now": now,
        "hours": counts.last_hour - counts.first_hour + 1,
        "from": counts.first_hour * HOUR_S,
        "until": (counts.last_hour + 1) * HOUR_S,
        "types": types,
        "ctr_type": CTR_TYPE,
        "per_hour": hours,
        "totals": totals,
        "total": sum(totals.values()),
        "lists_served": sum(served.values()),
        "by_version": _version_rows(credited, served, serving, types),
        "not_credited": {k: {t: v.get(t, 0) for t in types} for k, v in uncredited.items()},
        "serving_version": serving,
        "folded_seq": counts.folded_seq,
        "watermark": counts.watermark,
        "catching_up": counts.catching_up,
        "definition": DEFINITION,
    }


def feedback_view(
    feedback: Feedback,
    served_lists: ServedLists,
    configured_types: Sequence[str],
    serving: str | None,
    hours: int = DEFAULT_HOURS,
) -> dict[str, Any]:
    """Write this process's pending list counts, fold new events, read the last ``hours`` hours
    (the current one included). Blocking: call it from a worker thread.

    A store that cannot be used (not configured, not migrated, down) is an answer, not an error:
    ``{"available": false, "error": <the cause, e.g. run recserve db upgrade>}``, as the model
    section reports an unreadable model store, so the page shows why instead of failing."""
    now = time.time()
    last = hour_of(now)
    try:
        store: EventStore = feedback.store()
        served_lists.flush(store)
        counts = store.hourly(last - hours + 1, last)
    except (EventStoreUnavailable, EventStoreError) as exc:
        return {"available": False, "error": str(exc), "now": now, "hours": hours}
    return {"available": True, **summarize(counts, configured_types, serving, now)}
