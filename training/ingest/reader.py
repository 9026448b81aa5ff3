"""Reading CSV, TSV, Parquet and JSON Lines files (each optionally gzip-compressed) with pyarrow.

Why pyarrow: one well-kept library reads all four formats, decompresses gzip as a stream,
reads CSV columns with multiple threads and hands each malformed CSV row to a callback (so the
error can name it); Parquet comes with its schema and row groups (so progress is per group).
polars and duckdb read the same formats but report a malformed row less precisely.

Every failure is a :class:`DataError` whose message names the file and, where there is one, the
1-based line (row number for Parquet) and the offending text. The fast path never looks at line
numbers; they are recovered by re-scanning the file only when there is an error to report.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from tqdm import tqdm
from tqdm.utils import CallbackIOWrapper

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


class DataError(ValueError):
    """Bad input data: the message names the file (and line or row) and is shown as is."""


@dataclass(frozen=True)
class FileFormat:
    path: Path
    kind: str  # "csv" | "tsv" | "parquet" | "jsonl"
    gzip: bool

    @property
    def label(self) -> str:
        return self.kind + (".gz" if self.gzip else "")


def detect_format(path: str | Path) -> FileFormat:
    """Format from the file name: ``.csv``, ``.tsv``, ``.parquet``, ``.jsonl`` (each + ``.gz``)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    suffixes = [s.lower() for s in p.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    ext = suffixes[-2] if gz and len(suffixes) >= 2 else (suffixes[-1] if suffixes and not gz else "")
    if ext not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise DataError(
            f"{p}: unknown file type {ext or '(none)'!r}; expected one of {known} (optionally .gz)"
        )
    return FileFormat(p, FORMATS[ext], gz)


def _open_text(fmt: FileFormat) -> io.TextIOBase:
    raw = gzip.open(fmt.path, "rb") if fmt.gzip else open(fmt.path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def _physical_lines(fmt: FileFormat) -> Iterator[tuple[int, str]]:
    with _open_text(fmt) as fh:
        for no, line in enumerate(fh, start=1):
            yield no, line.rstrip("\r\n")


@dataclass(frozen=True)
class Locator:
    """Turns a row index of the table read into "file:line" (or "file: row N" for Parquet)."""

    fmt: FileFormat

    def where(self, row: int) -> str:
        if self.fmt.kind == "parquet":
            return f"{self.fmt.path}: row {row + 1}"
        return f"{self.fmt.path}:{self.line(row)}"

    def position(self, row: int) -> str:
        """ "line N" or "row N" (Parquet), without the file name."""
        return f"row {row + 1}" if self.fmt.kind == "parquet" else f"line {self.line(row)}"

    def line(self, row: int) -> int:
        """1-based physical line of data row ``row``: blank lines are skipped by the readers,
        and text files (not JSON Lines) start with a header line."""
        target = row + (0 if self.fmt.kind == "jsonl" else 1)
        seen = -1
        for no, text in _physical_lines(self.fmt):
            if text.strip() if self.fmt.kind == "jsonl" else text:
                seen += 1
                if seen == target:
                    return no
        return -1


def _progress_stream(fmt: FileFormat, progress: bool, stack: list[Any]) -> pa.NativeFile:
    """The file as an Arrow input stream, advancing a byte-count progress bar on stderr."""
    bar = tqdm(
        total=os.path.getsize(fmt.path),
        unit="B",
        unit_scale=True,
        desc=f"reading {fmt.path.name}",
        disable=not progress,
        leave=False,
    )
    raw = open(fmt.path, "rb")  # noqa: SIM115 (closed by the caller through ``stack``)
    stack += [raw, bar]
    stream = pa.PythonFile(CallbackIOWrapper(bar.update, raw, "read") if progress else raw, mode="r")
    return pa.CompressedInputStream(stream, "gzip") if fmt.gzip else stream


def _close(stack: list[Any]) -> None:
    for obj in reversed(stack):
        obj.close()


def csv_header(fmt: FileFormat) -> list[str]:
    """Column names from the first non-blank line of a CSV/TSV file."""
    delimiter = "\t" if fmt.kind == "tsv" else ","
    try:
        for _, text in _physical_lines(fmt):
            if text:
                reader = csv.reader([text.lstrip("\ufeff")], delimiter=delimiter, quoting=_quoting(fmt))
                return next(reader)
    except (OSError, EOFError) as exc:
        raise DataError(f"{fmt.path}: cannot be read as {fmt.label} ({exc})") from exc
    raise DataError(f"{fmt.path}: the file is empty (no header line)")


def _quoting(fmt: FileFormat) -> int:
    # TSV files rarely quote and often carry bare '"' in titles: quotes are ordinary characters there.
    return csv.QUOTE_NONE if fmt.kind == "tsv" else csv.QUOTE_MINIMAL


def _read_csv(fmt: FileFormat, columns: list[str] | None, progress: bool) -> pa.Table:
    header = csv_header(fmt)
    columns = header if columns is None else columns
    bad: list[tuple[str, int, int]] = []

    def on_invalid(row: Any) -> str:
        if len(bad) < 1000:
            bad.append((row.text, row.expected_columns, row.actual_columns))
        return "skip"

    parse = pacsv.ParseOptions(
        delimiter="\t" if fmt.kind == "tsv" else ",",
        quote_char=False if fmt.kind == "tsv" else '"',
        invalid_row_handler=on_invalid,
    )
    # Every column as text: ids stay exactly as written ("007"), and numbers are parsed by the
    # caller, which can then name the line of a bad value.
    convert = pacsv.ConvertOptions(
        include_columns=columns, column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=False
    )
    stack: list[Any] = []
    try:
        table = pacsv.read_csv(
            _progress_stream(fmt, progress, stack), parse_options=parse, convert_options=convert
        )
    except pa.ArrowInvalid as exc:
        if "invalid UTF8" in str(exc):  # Arrow names the column only: find the line and the bytes
            _raise_invalid_text(fmt, columns, parse)
        raise DataError(f"{fmt.path}: cannot be read as {fmt.label} ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"{fmt.path}: cannot be read as {fmt.label} ({exc})") from exc
    finally:
        _close(stack)
    if bad:
        # A row's text spans several lines when a quote is left open: its first line names it.
        fields = {text.split("\n", 1)[0]: (text, e, a) for text, e, a in reversed(bad)}
        line, first = next(((no, t) for no, t in _physical_lines(fmt) if t in fields), (None, ""))
        text, expected, actual = fields.get(first, bad[0])
        where = f"{fmt.path}:{line}" if line is not None else f"{fmt.path}"
        raise DataError(f"{where}: expected {expected} fields, got {actual}: {text[:200]!r}")
    return table


def first_bad(arr: pa.Array, ok: Callable[[pa.Array], bool]) -> int:
    """Index of the first element for which ``ok`` fails, given that it fails on the whole array:
    a bisection, so a few dozen vectorised calls instead of a Python loop over the rows."""
    lo, hi = 0, len(arr)  # invariant: the first bad element is in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(arr.slice(lo, mid - lo)):
            lo = mid
        else:
            hi = mid
    return lo


def _utf8(arr: pa.Array) -> bool:
    try:
        arr.cast(pa.string())  # from binary: validates every value
    except pa.ArrowInvalid:
        return False
    return True


def first_invalid_text(arr: pa.Array) -> int | None:
    """Index of the first value of a string or binary array that is not valid UTF-8, else None.

    Arrow's JSON reader and Parquet ``BYTE_ARRAY`` columns do not promise valid UTF-8: a bad
    value would otherwise surface much later as a bare UnicodeDecodeError."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_binary() if pa.types.is_large_string(arr.type) else pa.binary())
    elif not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
        return None
    return None if _utf8(arr) else first_bad(arr, _utf8)


def invalid_text_error(loc: Locator, arr: pa.Array, row: int, name: str, what: str) -> DataError:
    value = arr.cast(pa.large_binary())[row].as_py()
    return DataError(f"{loc.where(row)}: {what} {value[:200]!r} (column {name!r}) is not valid UTF-8 text")


def _raise_invalid_text(fmt: FileFormat, columns: list[str], parse: pacsv.ParseOptions) -> None:
    """Re-read the columns as bytes (only on this error path) and raise naming the first bad value."""
    convert = pacsv.ConvertOptions(
        include_columns=columns, column_types=dict.fromkeys(columns, pa.binary()), strings_can_be_null=False
    )
    stack: list[Any] = []
    try:
        table = pacsv.read_csv(
            _progress_stream(fmt, False, stack), parse_options=parse, convert_options=convert
        )
    finally:
        _close(stack)
    loc = Locator(fmt)
    for name in columns:
        arr = table.column(name).combine_chunks()
        if (row := first_invalid_text(arr)) is not None:
            raise invalid_text_error(loc, arr, row, name, "value")


def _parquet_source(fmt: FileFormat) -> Any:
    if not fmt.gzip:
        return fmt.path
    with gzip.open(fmt.path, "rb") as fh:  # Parquet needs random access: decompress in memory
        return pa.BufferReader(fh.read())


def _parquet_names(fmt: FileFormat) -> list[str]:
    try:
        return pq.read_schema(_parquet_source(fmt)).names
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise DataError(f"{fmt.path}: cannot be read as {fmt.label} ({exc})") from exc


def _read_parquet(fmt: FileFormat, columns: list[str] | None, progress: bool) -> pa.Table:
    try:
        pf = pq.ParquetFile(_parquet_source(fmt))
        groups = range(pf.num_row_groups)
        bar = tqdm(groups, desc=f"reading {fmt.path.name}", unit="group", disable=not progress, leave=False)
        parts = [pf.read_row_group(g, columns=columns) for g in bar]
        return pa.concat_tables(parts) if parts else pf.schema_arrow.empty_table()
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise DataError(f"{fmt.path}: cannot be read as {fmt.label} ({exc})") from exc


def _read_jsonl(fmt: FileFormat, progress: bool) -> pa.Table:
    stack: list[Any] = []
    try:
        return pajson.read_json(_progress_stream(fmt, progress, stack))
    except pa.ArrowInvalid:
        # Arrow's message counts rows within a block, not in the file: re-read in Python, which
        # finds the exact line, and also copes with a column mixing numbers and strings.
        return _read_jsonl_python(fmt)
    except (OSError, EOFError) as exc:
        raise DataError(f"{fmt.path}: cannot be read as {fmt.label} ({exc})") from exc
    finally:
        _close(stack)


def _as_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return [None if v is None else str(v) for v in value]
    return json.dumps(value) if isinstance(value, dict | bool) else str(value)


def _read_jsonl_python(fmt: FileFormat) -> pa.Table:
    rows: list[dict[str, Any]] = []
    try:
        for no, text in _physical_lines(fmt):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{fmt.path}:{no}: not valid JSON ({exc.msg}): {text[:200]!r}") from None
            if not isinstance(obj, dict):
                raise DataError(f"{fmt.path}:{no}: expected a JSON object, got {text[:200]!r}")
            rows.append(obj)
    except (OSError, EOFError) as exc:
        raise DataError(f"{fmt.path}: cannot be read as {fmt.label} ({exc})") from exc
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    cols = {}
    for name in names:
        values = [_as_text(r.get(name)) for r in rows]
        is_list = any(isinstance(v, list) for v in values)
        kind = pa.list_(pa.string()) if is_list else pa.string()
        cols[name] = pa.array([[v] if is_list and isinstance(v, str) else v for v in values], kind)
    return pa.table(cols)


def missing_column(fmt: FileFormat, wanted: list[str], found: list[str]) -> None:
    """Raise naming the first wanted column the file lacks, and the columns it has."""
    for name in wanted:
        if name not in found:
            raise DataError(
                f"{fmt.path}: no column {name!r}; columns found: {', '.join(map(repr, found)) or '(none)'}"
            )


def read_table(
    path: str | Path, columns: list[str] | None = None, optional: tuple[str, ...] = (), progress: bool = True
) -> tuple[pa.Table, Locator]:
    """Read ``columns`` (all when None) plus those of ``optional`` the file has.

    A missing required column is an error naming it and the columns found, raised before the
    data is read where the format allows (CSV header, Parquet schema). CSV/TSV columns come
    back as strings (the caller parses numbers); Parquet and JSON Lines keep their own types.
    Returns the table and a :class:`Locator` for error messages.
    """
    fmt = detect_format(path)
    if fmt.kind == "jsonl":
        table = _read_jsonl(fmt, progress)
        names = table.column_names
    elif fmt.kind == "parquet":
        names = _parquet_names(fmt)
    else:
        names = csv_header(fmt)
    if columns is not None:
        missing_column(fmt, columns, names)
        columns = [*columns, *(c for c in optional if c in names and c not in columns)]
    if fmt.kind == "jsonl":
        table = table if columns is None else table.select(columns)
    elif fmt.kind == "parquet":
        table = _read_parquet(fmt, columns, progress)
    else:
        table = _read_csv(fmt, columns, progress)
    return table, Locator(fmt)
