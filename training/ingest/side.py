"""Items and users files → filterable attributes and ranker features, aligned to the model's ids.

Every column but the id column is used:

* a **numeric** column (every non-empty value a number) becomes one standardised feature
  (z-score over the rows that match an id; missing values become 0, the mean);
* a **text** column (or a list column in Parquet/JSON Lines; text split on ``list_sep`` when given)
  becomes, for items, a filterable attribute (``item_filter`` of ``/recommend``) and, for both,
  one-hot ranker features of its ``MAX_CATEGORIES`` most frequent values that occur at least
  twice. A column whose values are nearly all distinct (titles, URLs: more than
  ``MAX_CATEGORIES`` values and more than half as many values as rows) carries no pattern a
  one-hot could learn: it stays an attribute only (so does a column where no value occurs twice).

The items' one-hot block is also the tag table (a user's tag profile × an item's tags is the
ranker's ``tag_affinity``). Rows whose id is not among the model's users/items are counted and
reported (``unknown_ids``), as are model ids with no row (``without_row``: no attributes, features 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.ingest.columns import id_column, numeric_or_none
from training.ingest.reader import (
    DataError,
    Locator,
    first_invalid_text,
    invalid_text_error,
    missing_column,
    read_table,
)

MAX_CATEGORIES = 32


@dataclass
class SideInfo:
    features: np.ndarray
    feature_names: list[str]
    tags: np.ndarray
    tag_names: list[str]
    attributes: dict[str, list[list[str]]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def _flat_values(arr: pa.Array, list_sep: str | None) -> tuple[np.ndarray, pa.Array] | None:
    """(row index, value) for every non-empty value of a text or list column; None otherwise."""
    t = arr.type
    if (pa.types.is_string(t) or pa.types.is_large_string(t)) and list_sep:
        arr = pc.split_pattern(arr, list_sep)
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        parents, values = np.arange(len(arr)), arr
    elif (pa.types.is_list(t) or pa.types.is_large_list(t)) and (
        pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)
    ):
        parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
        values = pc.list_flatten(arr)
    else:
        return None
    values = pc.utf8_trim_whitespace(values)
    ok = pc.and_(pc.is_valid(values), pc.not_equal(values, "")).fill_null(False)
    mask = ok.to_numpy(zero_copy_only=False).astype(bool)
    return parents[mask], values.filter(ok)


def read_side(
    path: str | Path,
    id_col: str,
    ids: list[str],
    what: str,
    list_sep: str | None = None,
    progress: bool = True,
) -> SideInfo:
    """Attributes and features for ``ids`` (the model's users or items, in row order) from a file."""
    table, loc = read_table(path, None, progress=progress)
    missing_column(loc.fmt, [id_col], table.column_names)
    codes, distinct = id_column(table, id_col, f"{what} id", loc)
    _no_duplicates(codes, distinct, id_col, what, loc)
    pos = {x: k for k, x in enumerate(ids)}
    row_entity = np.array([pos.get(x, -1) for x in distinct], np.int64)[codes]
    known = row_entity >= 0
    n = len(ids)
    unknown = [distinct[c] for c in codes[~known][:5].tolist()]
    report: dict[str, Any] = {
        "file": str(path),
        "format": loc.fmt.label,
        "id_col": id_col,
        "rows": table.num_rows,
        "matched": int(known.sum()),
        "unknown_ids": int((~known).sum()),
        "unknown_examples": unknown,
        "without_row": int(n - known.sum()),
        "numeric": [],
        "categorical": {},
        "attribute_only": {},
        "skipped": {},
    }
    numeric: list[np.ndarray] = []
    numeric_names: list[str] = []
    onehots: list[np.ndarray] = []
    onehot_names: list[str] = []
    attributes: dict[str, list[list[str]]] = {}
    for name in table.column_names:
        if name == id_col:
            continue
        col = table.column(name).combine_chunks()
        if (bad := first_invalid_text(col)) is not None:
            raise invalid_text_error(loc, col, bad, name, "value")
        values = numeric_or_none(col)
        if values is not None:
            z = _standardised(values, row_entity, known, n)
            if z is None:
                report["skipped"][name] = "constant"
                continue
            numeric.append(z)
            numeric_names.append(name)
            report["numeric"].append(name)
            continue
        flat = _flat_values(col, list_sep)
        if flat is None:
            report["skipped"][name] = f"type {col.type} is neither numeric nor text"
            continue
        parents, texts = flat
        ent = row_entity[parents]
        keep = ent >= 0
        ent, texts = ent[keep], texts.filter(pa.array(keep))
        enc = texts.dictionary_encode()
        vcodes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        vocab = enc.dictionary.to_pylist()
        if what == "item":
            attributes[name] = _per_entity(ent, vcodes, vocab, n)
        counts = np.bincount(vcodes, minlength=len(vocab))
        top = [v for v in np.argsort(-counts, kind="stable")[:MAX_CATEGORIES].tolist() if counts[v] >= 2]
        why = ""
        if len(vocab) > MAX_CATEGORIES and len(vocab) > 0.5 * max(1, report["matched"]):
            why = "nearly all values distinct"
        elif not top:
            why = "no value occurs twice"
        if why:
            if what == "item":
                report["attribute_only"][name] = why
            else:
                report["skipped"][name] = why
            continue
        col_of = np.full(len(vocab), -1)
        col_of[top] = np.arange(len(top))
        block = np.zeros((n, len(top)), np.float32)
        sel = col_of[vcodes] >= 0
        block[ent[sel], col_of[vcodes[sel]]] = 1.0
        onehots.append(block)
        onehot_names += [f"{name}={vocab[v]}" for v in top]
        report["categorical"][name] = len(top)
    features = np.concatenate([np.stack(numeric, axis=1) if numeric else np.zeros((n, 0)), *onehots], axis=1)
    tags = np.concatenate(onehots, axis=1) if onehots else np.ones((n, 1), np.float32)
    return SideInfo(
        features=features.astype(np.float32),
        feature_names=[*numeric_names, *onehot_names],
        tags=tags,
        tag_names=onehot_names if onehots else ["all"],
        attributes=attributes,
        report=report,
    )


def _no_duplicates(codes: np.ndarray, distinct: list[str], id_col: str, what: str, loc: Locator) -> None:
    if len(distinct) == len(codes):
        return
    _, first = np.unique(codes, return_index=True)
    is_first = np.zeros(len(codes), bool)
    is_first[first] = True
    i = int(np.flatnonzero(~is_first)[0])
    j = int(first[codes[i]])  # np.unique of dense codes 0..m-1: position k holds code k
    raise DataError(
        f"{loc.where(i)}: duplicate {what} id {distinct[codes[i]]!r} "
        f"(column {id_col!r}; first at {loc.position(j)})"
    )


def _standardised(values: np.ndarray, row_entity: np.ndarray, known: np.ndarray, n: int) -> np.ndarray | None:
    per = np.full(n, np.nan)
    per[row_entity[known]] = values[known]
    ok = np.isfinite(per)
    if ok.sum() < 2 or per[ok].std() < 1e-12:
        return None
    z = (per - per[ok].mean()) / per[ok].std()
    z[~ok] = 0.0
    return z


def _per_entity(ent: np.ndarray, vcodes: np.ndarray, vocab: list[str], n: int) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(n)]
    for e, v in zip(ent.tolist(), vcodes.tolist(), strict=True):
        values = out[e]
        if vocab[v] not in values:
            values.append(vocab[v])
    return out
