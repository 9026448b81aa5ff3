"""Bad input to ``recserve data inspect`` / ``train --interactions``: one clear line, exit 1.

Each case writes a small file, runs the real command and checks that the message names what is
wrong (the column and the columns found; the file and line, or Parquet row, and the value; the
filter that emptied the data) and that no traceback escapes.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

Run = Callable[..., tuple[int, str, str]]
GOOD = "user_id,item_id,timestamp\nu1,a,1\nu1,b,2\nu2,a,3\nu2,c,4\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _error(run_cli: Run, *argv: str | Path, status: int = 1) -> str:
    """The one error line of a failed command; ``status`` 1 = bad input, 2 = called wrong."""
    code, out, err = run_cli(*argv)
    assert code == status, (out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", [("data", "inspect"), ("train", "--interactions")])
def test_missing_column_names_it_and_the_columns_found(tmp_path: Path, run_cli: Run, command: tuple) -> None:
    path = _write(tmp_path / "log.csv", "user_id,product,timestamp\nu1,a,1\n")
    msg = _error(run_cli, *command, path)
    assert f"{path}: no column 'item_id'" in msg
    assert "columns found: 'user_id', 'product', 'timestamp'" in msg


def test_missing_column_in_parquet_and_explicit_time_column(tmp_path: Path, run_cli: Run) -> None:
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"uid": ["u1"], "iid": ["a"]}), path)
    msg = _error(
        run_cli, "data", "inspect", path, "--user-col", "uid", "--item-col", "iid", "--time-col", "ts"
    )
    assert "no column 'ts'" in msg and "columns found: 'uid', 'iid'" in msg
    # The default time column may be absent: the file's order stands in for time.
    code, out, _ = run_cli("data", "inspect", path, "--user-col", "uid", "--item-col", "iid", "--json")
    assert code == 0 and json.loads(out)["time_range"] is None


def test_row_with_wrong_field_count_names_line_and_text(tmp_path: Path, run_cli: Run) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu1,a,1\n\nu2,b,2,extra\nu3,c,3\n")
    msg = _error(run_cli, "data", "inspect", path)
    assert f"{path}:4: expected 3 fields, got 4: 'u2,b,2,extra'" in msg


def test_unparseable_timestamp_names_line_and_value(tmp_path: Path, run_cli: Run) -> None:
    path = _write(tmp_path / "log.tsv", "user_id\titem_id\ttimestamp\nu1\ta\t5\nu1\tb\tyesterday\n")
    msg = _error(run_cli, "train", "--interactions", path)
    assert f"{path}:3: timestamp 'yesterday'" in msg
    iso = _write(
        tmp_path / "iso.csv", "user_id,item_id,timestamp\nu1,a,2020-01-01T10:00:00Z\nu1,b,2020-13-01\n"
    )
    assert f"{iso}:3: timestamp '2020-13-01'" in _error(run_cli, "data", "inspect", iso)


def test_unparseable_weight_names_line_and_value(tmp_path: Path, run_cli: Run) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,timestamp,w\nu1,a,1,2\nu1,b,2,1.5\nu2,a,3,lots\n")
    msg = _error(run_cli, "data", "inspect", path, "--weight-col", "w")
    assert f"{path}:4: weight 'lots' (column 'w') is not a number" in msg


def test_invalid_json_line_is_named(tmp_path: Path, run_cli: Run) -> None:
    path = tmp_path / "log.jsonl.gz"
    lines = ['{"user_id": "u1", "item_id": "a", "timestamp": 1}', "", '{"user_id": "u2", "item_id": "b"']
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    msg = _error(run_cli, "data", "inspect", path)
    assert f"{path}:3: not valid JSON" in msg


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_id_names_line(tmp_path: Path, run_cli: Run, bad: str) -> None:
    path = _write(tmp_path / "log.csv", f"user_id,item_id,timestamp\nu1,a,1\n{bad},b,2\n")
    msg = _error(run_cli, "train", "--interactions", path)
    assert f"{path}:3: empty user id (column 'user_id')" in msg


def test_parquet_errors_name_the_row(tmp_path: Path, run_cli: Run) -> None:
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user_id": ["u1", "u2", "u3"], "item_id": ["a", None, "c"]}), path)
    assert f"{path}: row 2: empty item id" in _error(run_cli, "data", "inspect", path)
    pq.write_table(pa.table({"user_id": ["u1", "u2"], "item_id": ["a", "b"], "timestamp": ["1", "x"]}), path)
    assert f"{path}: row 2: timestamp 'x'" in _error(run_cli, "data", "inspect", path)


def test_filter_that_empties_the_data_is_named(tmp_path: Path, run_cli: Run) -> None:
    path = _write(tmp_path / "log.csv", GOOD)
    msg = _error(run_cli, "train", "--interactions", path, "--min-weight", "3")
    assert "no interactions left after --min-weight 3" in msg and "largest pair weight is 1" in msg
    msg = _error(run_cli, "train", "--interactions", path, "--k-core", "3")
    assert "no interactions left after --k-core 3" in msg
    # Each user keeps one training pair: nothing to cut a validation slice from.
    assert "too little data to train" in _error(run_cli, "train", "--interactions", path)
    neg = _write(tmp_path / "neg.csv", "user_id,item_id,w\nu1,a,-1\nu2,b,0\n")
    msg = _error(run_cli, "data", "inspect", neg, "--weight-col", "w")
    assert "weight is <= 0" in msg


def test_other_bad_inputs(tmp_path: Path, run_cli: Run) -> None:
    assert "no such file" in _error(run_cli, "data", "inspect", tmp_path / "nope.csv")
    xls = _write(tmp_path / "log.xlsx", "x")
    assert "unknown file type '.xlsx'" in _error(run_cli, "data", "inspect", xls)
    empty = _write(tmp_path / "empty.csv", "")
    assert "the file is empty" in _error(run_cli, "data", "inspect", empty)
    header_only = _write(tmp_path / "header.csv", "user_id,item_id\n")
    assert "no data rows" in _error(run_cli, "data", "inspect", header_only)
    not_gzip = _write(tmp_path / "log.csv.gz", GOOD)
    assert f"{not_gzip}: cannot be read" in _error(run_cli, "data", "inspect", not_gzip)
    good = _write(tmp_path / "log.csv", GOOD)
    assert "--items need(s) --interactions" in _error(run_cli, "train", "--items", good, status=2)
    assert "not both" in _error(run_cli, "train", "--interactions", good, "--dataset", "synthetic", status=2)
    assert "test-fraction" in _error(run_cli, "train", "--interactions", good, "--test-fraction", "1")


def test_items_file_errors_name_line(tmp_path: Path, run_cli: Run) -> None:
    log = _write(tmp_path / "log.csv", GOOD)
    dup = _write(tmp_path / "items.csv", "item_id,genre\na,x\nb,y\na,z\n")
    msg = _error(run_cli, "train", "--interactions", log, "--items", dup)
    assert f"{dup}:4: duplicate item id 'a' (column 'item_id'; first at line 2)" in msg
    other = _write(tmp_path / "items2.csv", "sku,genre\na,x\n")
    assert "no column 'item_id'" in _error(run_cli, "train", "--interactions", log, "--items", other)


def test_text_that_is_not_utf8_names_file_line_and_bytes(tmp_path: Path, run_cli: Run) -> None:
    # Arrow reports these as "In CSV column #0: invalid UTF8 data" (CSV), "Invalid UTF8 payload"
    # (Parquet bytes) or not at all (JSON Lines): each must come out naming the line or row.
    csv_path = tmp_path / "log.csv"
    csv_path.write_bytes(b"user_id,item_id,timestamp\nu1,a,1\n\nu\xff2,b,2\n")
    msg = _error(run_cli, "data", "inspect", csv_path)
    assert f"{csv_path}:4: value b'u\\xff2' (column 'user_id') is not valid UTF-8" in msg
    tsv = tmp_path / "log.tsv.gz"
    tsv.write_bytes(gzip.compress(b"user_id\titem_id\ttimestamp\nu1\ta\t1\nu2\t\xfe\t2\n"))
    msg = _error(run_cli, "train", "--interactions", tsv)
    assert f"{tsv}:3: value b'\\xfe' (column 'item_id') is not valid UTF-8" in msg

    parquet = tmp_path / "log.parquet"
    ids = pa.array([b"u1", b"u2", b"\xff"], pa.binary())
    pq.write_table(pa.table({"user_id": ids, "item_id": ["a", "b", "c"], "timestamp": [1, 2, 3]}), parquet)
    msg = _error(run_cli, "data", "inspect", parquet)
    assert f"{parquet}: row 3: user id b'\\xff' (column 'user_id') is not valid UTF-8" in msg

    jsonl = tmp_path / "log.jsonl"
    jsonl.write_bytes(b'{"user_id": "u1", "item_id": "a"}\n{"user_id": "u2", "item_id": "b\xff"}\n')
    msg = _error(run_cli, "data", "inspect", jsonl)
    assert f"{jsonl}:2: item id b'b\\xff' (column 'item_id') is not valid UTF-8" in msg


def test_text_that_is_not_utf8_in_an_items_file_names_its_row(tmp_path: Path, run_cli: Run) -> None:
    log = _write(tmp_path / "log.csv", GOOD)
    items = tmp_path / "items.parquet"
    genre = pa.array([b"x", b"y\xc3"], pa.binary())
    pq.write_table(pa.table({"item_id": ["a", "b"], "genre": genre}), items)
    msg = _error(run_cli, "train", "--interactions", log, "--items", items)
    assert f"{items}: row 2: value b'y\\xc3' (column 'genre') is not valid UTF-8" in msg


def test_an_open_quote_names_the_line_where_the_row_starts(tmp_path: Path, run_cli: Run) -> None:
    path = _write(tmp_path / "log.csv", 'user_id,item_id,timestamp\nu1,a,1\n"u2,b,2\nu3,c,3\n')
    msg = _error(run_cli, "data", "inspect", path)
    assert f"{path}:3: expected 3 fields, got 1: " in msg and "u2,b,2" in msg
