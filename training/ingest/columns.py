"""Column conversions with errors that name the row: ids, timestamps, weights, numeric detection.

All conversions are vectorised Arrow casts. When a cast fails, the first failing row is found by
bisection over the column (a few dozen more casts) and reported with its file and line.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.ingest.reader import DataError, Locator, first_bad, first_invalid_text, invalid_text_error

__all__ = ["first_bad", "id_column", "number_column", "numeric_or_none", "time_column"]


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def _casts(arr: pa.Array, target: pa.DataType) -> bool:
    try:
        arr.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _empty_mask(arr: pa.Array) -> np.ndarray:
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        blank = pc.equal(pc.utf8_trim_whitespace(arr), "")
        mask = pc.or_kleene(pc.is_null(arr), blank)
    else:
        mask = pc.is_null(arr)
    return mask.to_numpy(zero_copy_only=False).astype(bool)


def _require_values(arr: pa.Array, name: str, what: str, loc: Locator) -> None:
    """Every value present, not blank, and (text) valid UTF-8; else an error naming the row."""
    if (bad := first_invalid_text(arr)) is not None:
        raise invalid_text_error(loc, arr, bad, name, what)
    if arr.null_count or pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        empty = np.flatnonzero(_empty_mask(arr))
        if len(empty):
            raise DataError(f"{loc.where(int(empty[0]))}: empty {what} (column {name!r})")


def id_column(table: pa.Table, name: str, what: str, loc: Locator) -> tuple[np.ndarray, list[str]]:
    """Dense codes (first appearance order) and the distinct ids, exactly as the file spells them.

    Text ids are kept byte for byte ("007" stays "007"); Parquet/JSON numbers become their
    decimal text. An empty or missing id is an error naming the row.
    """
    arr = _column(table, name)
    if pa.types.is_list(arr.type) or pa.types.is_struct(arr.type):
        raise DataError(f"{loc.fmt.path}: column {name!r} holds {arr.type}, expected one {what} per row")
    if (bad := first_invalid_text(arr)) is not None:  # before a cast of bytes to text fails
        raise invalid_text_error(loc, arr, bad, name, what)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    _require_values(arr, name, what, loc)
    enc = arr.dictionary_encode()
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def _iso_python(arr: pa.Array, name: str, loc: Locator) -> np.ndarray:
    """Per distinct value with :func:`datetime.fromisoformat` (mixed offsets, odd forms)."""
    uniques = pc.unique(arr)
    out = np.empty(len(uniques), np.float64)
    bad: list[str] = []
    for k, text in enumerate(uniques.to_pylist()):
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            bad.append(text)
            continue
        out[k] = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    if bad:
        pos = pc.index_in(arr, value_set=pa.array(bad)).to_numpy(zero_copy_only=False)
        i = int(np.flatnonzero(~np.isnan(pos.astype(np.float64)))[0])
        value = arr[i].as_py()
        raise DataError(
            f"{loc.where(i)}: timestamp {value!r} (column {name!r}) is neither epoch seconds nor ISO 8601"
        )
    return out[pc.index_in(arr, value_set=uniques).to_numpy(zero_copy_only=False)]


def time_column(table: pa.Table, name: str, loc: Locator) -> np.ndarray:
    """Epoch seconds (float64, UTC) from epoch numbers, ISO 8601 text or Arrow timestamp/date types.

    A text column is epoch seconds when its first value is a number, ISO 8601 otherwise; every
    other value must then be of the same kind. ISO times without an offset are taken as UTC.
    """
    arr = _column(table, name)
    _require_values(arr, name, "timestamp", loc)
    t = arr.type
    if pa.types.is_timestamp(t):
        return arr.cast(pa.timestamp("us", t.tz)).cast(pa.int64()).to_numpy().astype(np.float64) / 1e6
    if pa.types.is_date(t):
        return arr.cast(pa.date32()).cast(pa.int32()).to_numpy().astype(np.float64) * 86400.0
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return _finite(arr.cast(pa.float64()).to_numpy(), arr, name, "timestamp", loc)
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise DataError(f"{loc.fmt.path}: column {name!r} holds {t}, expected timestamps")
    if len(arr) == 0:
        return np.zeros(0, np.float64)
    if _casts(arr.slice(0, 1), pa.float64()):
        values = _cast_or_none(arr, pa.float64())
        if values is None:
            i = first_bad(arr, lambda a: _casts(a, pa.float64()))
            raise DataError(
                f"{loc.where(i)}: timestamp {arr[i].as_py()!r} (column {name!r}) is not a number, "
                f"but the column's first value {arr[0].as_py()!r} is epoch seconds"
            )
        return _finite(values.to_numpy(), arr, name, "timestamp", loc)
    for target in (pa.timestamp("us"), pa.timestamp("us", "UTC")):
        if (stamps := _cast_or_none(arr, target)) is not None:
            return stamps.cast(pa.int64()).to_numpy().astype(np.float64) / 1e6
    return _iso_python(arr, name, loc)


def _cast_or_none(arr: pa.Array, target: pa.DataType) -> pa.Array | None:
    try:
        return arr.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _finite(values: np.ndarray, arr: pa.Array, name: str, what: str, loc: Locator) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{loc.where(i)}: {what} {arr[i].as_py()!r} (column {name!r}) is not a finite number")
    return values.astype(np.float64)


def number_column(table: pa.Table, name: str, what: str, loc: Locator) -> np.ndarray:
    """Float64 values of a numeric column (text is parsed); empty or unparseable → error naming the row."""
    arr = _column(table, name)
    _require_values(arr, name, what, loc)
    values = _cast_or_none(arr, pa.float64())
    if values is None:
        i = first_bad(arr, lambda a: _casts(a, pa.float64()))
        raise DataError(f"{loc.where(i)}: {what} {arr[i].as_py()!r} (column {name!r}) is not a number")
    return _finite(values.to_numpy(zero_copy_only=False), arr, name, what, loc)


def numeric_or_none(arr: pa.Array) -> np.ndarray | None:
    """Float64 values (NaN where empty) if every non-empty value is a number, else None."""
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return arr.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return None
    empty = _empty_mask(arr)
    values = arr.filter(pa.array(~empty))
    if len(values) == 0 or not _casts(values, pa.float64()):
        return None
    out = np.full(len(arr), np.nan)
    out[~empty] = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return out if np.isfinite(out[~empty]).all() else None
