"""What the reader makes of a file: ids, times, duplicates, filters, the split, side files, inspect."""

from __future__ import annotations

import gzip
import itertools
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.ingest.build import DataSpec, load_interactions, load_pairs
from training.ingest.log import LogColumns, LogFilters, Pairs, read_log, split_by_time

Run = Callable[..., tuple[int, str, str]]


def _csv(path: Path, header: str, rows: list[tuple]) -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _pairs(path: Path, **kw):
    cols = {k: kw.pop(k) for k in ("user_col", "item_col", "time_col", "weight_col") if k in kw}
    return load_pairs(DataSpec(str(path), LogColumns(**cols), filters=LogFilters(**kw)), progress=False)


def test_ids_are_kept_exactly_as_written(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "log.csv", "user_id,item_id,timestamp", [("007", "01", 1), ("7", "1", 2), (" 7", "1", 3)]
    )
    log = read_log(path, LogColumns(), False, progress=False)
    assert log.user_ids == ["007", "7", " 7"] and log.item_ids == ["01", "1"]
    jl = tmp_path / "log.jsonl"
    jl.write_text(
        '{"user_id": 7, "item_id": "007", "timestamp": 1}\n{"user_id": "x", "item_id": 8, "timestamp": 2}\n'
    )
    log = read_log(jl, LogColumns(), False, progress=False)  # numbers and strings mixed: still text
    assert log.user_ids == ["7", "x"] and log.item_ids == ["007", "8"]
    pqp = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user_id": [10, 20], "item_id": ["a", "b"]}), pqp)
    assert read_log(pqp, LogColumns(), False, progress=False).user_ids == ["10", "20"]


def test_timestamps_epoch_iso_and_native(tmp_path: Path) -> None:
    texts = ["2020-01-01", "2020-01-01T10:00:00", "2020-01-01T10:00:00Z", "2020-01-01T12:00:00+02:00"]
    path = tmp_path / "iso.csv"
    path.write_text("user_id,item_id,timestamp\n" + "".join(f"u,i{k},{t}\n" for k, t in enumerate(texts)))
    got = read_log(path, LogColumns(), False, progress=False).times
    want = [datetime.fromisoformat(t).replace(tzinfo=datetime.fromisoformat(t).tzinfo or UTC) for t in texts]
    np.testing.assert_allclose(got, [w.timestamp() for w in want])
    epoch = _csv(tmp_path / "epoch.csv", "user_id,item_id,timestamp", [("u", "a", 5), ("u", "b", 6.5)])
    np.testing.assert_allclose(read_log(epoch, LogColumns(), False, progress=False).times, [5, 6.5])
    native = tmp_path / "native.parquet"
    stamps = [datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC), datetime(2022, 1, 1, tzinfo=UTC)]
    pq.write_table(pa.table({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": stamps}), native)
    got = read_log(native, LogColumns(), False, progress=False).times
    np.testing.assert_allclose(got, [s.timestamp() for s in stamps])


def test_duplicates_collapse_by_count_or_weight_sum(tmp_path: Path) -> None:
    rows = [
        ("u1", "a", 1, 2.0),
        ("u1", "a", 5, 1.0),
        ("u1", "b", 2, 1.0),
        ("u2", "a", 3, 0.5),
        ("u2", "a", 4, 0.5),
    ]
    path = _csv(tmp_path / "log.csv", "user_id,item_id,timestamp,w", rows)
    counted = _pairs(path)
    by_pair = {
        (counted.user_ids[u], counted.item_ids[i]): (w, t)
        for u, i, w, t in zip(counted.users, counted.items, counted.weight, counted.time, strict=True)
    }
    assert by_pair == {("u1", "a"): (2, 5), ("u1", "b"): (1, 2), ("u2", "a"): (2, 4)}  # latest time kept
    assert counted.report["dropped"] == {"duplicate_merged": 2, "non_positive_weight": 0}
    summed = _pairs(path, weight_col="w", min_weight=1.5)
    kept = {(summed.user_ids[u], summed.item_ids[i]) for u, i in zip(summed.users, summed.items, strict=True)}
    assert kept == {("u1", "a")}  # u1/a sums to 3; u1/b (1) and u2/a (0.5 + 0.5) are below 1.5
    d = summed.report["dropped"]
    assert d == {"duplicate_merged": 1, "non_positive_weight": 0, "below_min_weight": 3}
    assert sum(d.values()) + summed.report["interactions"] == len(rows)


def _reference_k_core(pairs: set[tuple[int, int]], k: int) -> set[tuple[int, int]]:
    while True:
        users = Counter(u for u, _ in pairs)
        items = Counter(i for _, i in pairs)
        keep = {(u, i) for u, i in pairs if users[u] >= k and items[i] >= k}
        if keep == pairs:
            return keep
        pairs = keep


def test_k_core_matches_a_reference_and_counts_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = [(f"u{rng.integers(40)}", f"i{rng.zipf(1.5) % 60}", t) for t in range(800)]
    path = _csv(tmp_path / "log.csv", "user_id,item_id,timestamp", rows)
    for k in (2, 4, 6):
        p = _pairs(path, k_core=k)
        got = {(p.user_ids[u], p.item_ids[i]) for u, i in zip(p.users, p.items, strict=True)}
        want = _reference_k_core({(u, i) for u, i, _ in rows}, k)
        assert want and got == want
        d = p.report["dropped"]
        assert d["k_core"] == sum(1 for u, i, _ in rows if (u, i) not in got)
        assert sum(d.values()) + len(got) == len(rows)


def test_split_holds_out_the_last_fraction_by_time_per_user(tmp_path: Path) -> None:
    # u1: 10 items at distinct times (file order scrambled); u2: a single item; u3: ties in time.
    times = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10]
    rows = [("u1", f"a{t}", t) for t in times] + [("u2", "b", 1)] + [("u3", f"c{k}", 1) for k in range(5)]
    path = _csv(tmp_path / "log.csv", "user_id,item_id,timestamp", rows)
    data, report = load_interactions(DataSpec(str(path), test_fraction=0.2), progress=False)
    test = {
        (data.user_ids[u], data.item_ids[i]) for u, i in zip(data.test_users, data.test_items, strict=True)
    }
    assert test == {("u1", "a9"), ("u1", "a10"), ("u3", "c4")}  # ties: the later row in the file
    assert "u2" in {data.user_ids[u] for u in data.train_users}
    assert report["split"] == {"test_fraction": 0.2, "train": 13, "test": 3, "test_users": 2}
    assert len(data.train_time) == len(data.train_users)


def test_items_and_users_files_become_attributes_and_features(tmp_path: Path) -> None:
    log = _csv(
        tmp_path / "log.csv",
        "user_id,item_id,timestamp",
        [(f"u{u}", f"i{i}", u * 10 + i) for u, i in itertools.product(range(6), range(5)) if (u + i) % 3],
    )
    items = tmp_path / "items.csv"
    lines = ["item_id,genre,price,title"] + [
        f"i{i},{'x|y' if i % 2 else 'y'},{i * 10},T{i}" for i in range(4)
    ]
    items.write_text("\n".join([*lines, "ghost,z,1,G", "ghost2,z,2,H"]) + "\n")
    users = tmp_path / "users.jsonl"
    users.write_text(
        "".join(json.dumps({"user_id": f"u{u}", "plan": "pro" if u < 3 else "free"}) + "\n" for u in range(6))
    )
    spec = DataSpec(str(log), items=str(items), users=str(users), list_sep="|")
    data, report = load_interactions(spec, progress=False)
    attrs = data.item_attributes
    assert set(attrs) == {"genre", "title"}
    for k, item in enumerate(data.item_ids):
        n = int(item[1:])
        assert attrs["genre"][k] == ([] if n == 4 else ["x", "y"] if n % 2 else ["y"])  # i4 has no row
    f = report["items_file"]
    assert (f["unknown_ids"], f["unknown_examples"], f["without_row"]) == (2, ["ghost", "ghost2"], 1)
    assert (
        f["numeric"] == ["price"]
        and f["categorical"] == {"genre": 2}
        and list(f["attribute_only"]) == ["title"]
    )
    price = data.item_features[:, data.item_feature_names.index("price")]
    known = [k for k, item in enumerate(data.item_ids) if item != "i4"]
    assert abs(price[known].mean()) < 1e-6 and abs(price[known].std() - 1) < 1e-6
    assert data.tag_names == ["genre=y", "genre=x"]
    plan = data.user_features[:, data.user_feature_names.index("plan=pro")]
    assert [bool(v) for v in plan] == [int(u[1:]) < 3 for u in data.user_ids]
    assert data.user_feature_names[-1] == "log_activity"


def test_inspect_profiles_plain_and_gzip_alike(tmp_path: Path, run_cli: Run) -> None:
    rows = [("u1", "a", 100), ("u1", "a", 200), ("u1", "b", 300), ("u2", "a", 86400), ("u3", "c", 50)]
    text = "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows)
    plain = tmp_path / "log.csv"
    plain.write_text(text)
    (tmp_path / "log.csv.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "log.tsv.gz").write_bytes(gzip.compress(text.replace(",", "\t").encode()))
    jsonl = "".join(json.dumps({"user_id": u, "item_id": i, "timestamp": t}) + "\n" for u, i, t in rows)
    (tmp_path / "log.jsonl.gz").write_bytes(gzip.compress(jsonl.encode()))
    table = pa.table({k: [r[j] for r in rows] for j, k in enumerate(("user_id", "item_id", "timestamp"))})
    pq.write_table(table, tmp_path / "log.parquet")
    code, out, err = run_cli("data", "inspect", plain, "--json", "--k-core", "2")
    assert code == 0, err
    assert "reading log.csv" in err  # progress bar on stderr
    p = json.loads(out)
    assert (p["rows"], p["users"], p["items"], p["interactions"], p["duplicates"]) == (5, 3, 3, 4, 1)
    assert p["density"] == pytest.approx(4 / 9)
    assert p["time_range"] == {"min": "1970-01-01T00:00:50Z", "max": "1970-01-02T00:00:00Z"}
    assert p["per_user"]["max"] == 2 and p["per_item"]["max"] == 2 and p["per_user"]["min"] == 1
    # u1–b, u2 and u3 have one pair each: the 2-core unravels completely.
    assert p["would_drop"] == {"duplicate_merged": 0, "non_positive_weight": 0, "k_core": 5}
    assert p["would_keep"]["interactions"] == 0 and p["emptied_by"].startswith("--k-core 2")
    for name in ("log.csv.gz", "log.tsv.gz", "log.jsonl.gz", "log.parquet"):
        code, out, err = run_cli("data", "inspect", tmp_path / name, "--json", "--k-core", "2")
        assert code == 0, err
        other = json.loads(out)
        assert {k: v for k, v in other.items() if k not in ("file", "format")} == {
            k: v for k, v in p.items() if k not in ("file", "format")
        }
    code, out, _ = run_cli("data", "inspect", plain)
    assert code == 0 and "duplicate_merged" in out and "time range  1970-01-01T00:00:50Z" in out
    assert "training would" not in out.split("training would drop")[1]  # no filter: nothing empties


def test_the_split_does_not_depend_on_the_order_the_pairs_come_in() -> None:
    # split_by_time takes a fast path when the pairs are already in time order (as load_pairs
    # leaves them): shuffled, the same pairs must get the same test mask.
    rng = np.random.default_rng(3)
    n = 5000
    users = rng.integers(0, 300, n)
    time = rng.integers(0, 50, n).astype(np.float64)  # many ties, broken by first_row
    first_row = rng.permutation(n)
    order = np.lexsort((first_row, time))

    def pairs(idx: np.ndarray) -> Pairs:
        return Pairs(users[idx], users[idx] * 0, np.ones(len(idx)), time[idx], first_row[idx], [], [])

    in_time_order = split_by_time(pairs(order), 0.3, progress=False)
    shuffle = rng.permutation(n)
    shuffled = split_by_time(pairs(shuffle), 0.3, progress=False)
    expected = np.zeros(n, bool)
    expected[order] = in_time_order
    assert (shuffled == expected[shuffle]).all()
    assert 0.25 * n < in_time_order.sum() < 0.35 * n
