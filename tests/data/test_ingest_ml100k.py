"""The whole own-data path on MovieLens-100K written out as files by the test.

CSV with the default column names and epoch seconds, and Parquet with renamed columns,
zero-padded string ids and ISO 8601 times (items as Parquet with a list column, users as JSON
Lines): ``recserve train --interactions`` → publish → serve → ``/recommend`` answers with the
file's own ids, and ``item_filter`` works on an items-file attribute.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from model_store import LocalStore
from service.app import create_app
from service.settings import Settings
from training.ingest.build import DataSpec, load_interactions
from training.movielens import GENRES, MovieLens100K

pytestmark = pytest.mark.slow
SMALL = ("--epochs", "2", "--dim", "16", "--ranker-epochs", "2")


def _genres(ml: MovieLens100K) -> list[list[str]]:
    return [[GENRES[j] for j in np.flatnonzero(row)] for row in ml.genres]


def write_csv_variant(ml: MovieLens100K, folder: Path) -> dict[str, Any]:
    """Default column names, epoch seconds, ids as MovieLens writes them; items with '|' lists."""
    r = ml.ratings
    pacsv.write_csv(
        pa.table({"user_id": r.users, "item_id": r.items, "rating": r.ratings, "timestamp": r.timestamps}),
        folder / "ratings.csv",
    )
    year = [None if np.isnan(y) else int(y) for y in ml.release_year]
    items = {
        "item_id": [str(i) for i in ml.item_ids],
        "title": ml.titles,
        "genre": ["|".join(g) for g in _genres(ml)],
        "year": year,
    }
    pacsv.write_csv(pa.table(items), folder / "items.csv")
    users = {"user_id": [str(u) for u in ml.user_ids], "age": ml.age, "occupation": ml.occupation}
    pacsv.write_csv(pa.table(users), folder / "users.csv")
    return {
        "args": [
            *("--interactions", folder / "ratings.csv", "--weight-col", "rating", "--min-weight", "4"),
            *("--items", folder / "items.csv", "--users", folder / "users.csv", "--list-sep", "|"),
        ],
        "user": str,
        "item": str,
        "genres": dict(zip(items["item_id"], _genres(ml), strict=True)),
    }


def write_parquet_variant(ml: MovieLens100K, folder: Path) -> dict[str, Any]:
    """Renamed columns, zero-padded string ids, ISO 8601 times; items Parquet, users JSON Lines."""
    r = ml.ratings

    def user(u: int) -> str:
        return f"{u:05d}"

    def item(i: int) -> str:
        return f"m{i:04d}"

    iso = [datetime.fromtimestamp(int(t), UTC).isoformat() for t in r.timestamps]
    table = {
        "viewer": [user(u) for u in r.users.tolist()],
        "film": [item(i) for i in r.items.tolist()],
        "stars": r.ratings,
        "when": iso,
    }
    pq.write_table(pa.table(table), folder / "ratings.parquet")
    genres = _genres(ml)
    films = [item(i) for i in ml.item_ids]
    pq.write_table(pa.table({"film": films, "genre": genres}), folder / "items.parquet")
    with (folder / "users.jsonl").open("w") as fh:
        for u, g, occ in zip(ml.user_ids, ml.gender, ml.occupation, strict=True):
            fh.write(json.dumps({"viewer": user(u), "gender": g, "occupation": occ}) + "\n")
    return {
        "args": [
            *("--interactions", folder / "ratings.parquet", "--user-col", "viewer", "--item-col", "film"),
            *("--time-col", "when", "--weight-col", "stars", "--min-weight", "4"),
            *("--items", folder / "items.parquet", "--item-id-col", "film"),
            *("--users", folder / "users.jsonl", "--user-id-col", "viewer"),
        ],
        "user": user,
        "item": item,
        "genres": dict(zip(films, genres, strict=True)),
    }


@pytest.mark.parametrize("variant", [write_csv_variant, write_parquet_variant], ids=["csv", "parquet"])
def test_file_to_served_recommendations(
    variant: Callable[[MovieLens100K, Path], dict[str, Any]],
    ml_raw: MovieLens100K,
    tmp_path: Path,
    run_cli: Callable[..., tuple[int, str, str]],
) -> None:
    files = variant(ml_raw, tmp_path)
    store = tmp_path / "store"
    code, out, err = run_cli("train", *files["args"], *SMALL, "--store", store, "--json")
    assert code == 0, err
    assert "Traceback" not in err
    result = json.loads(out)  # --json: stdout is the JSON alone, the report text goes to stderr
    report = result["data"]

    # Every row of the file is accounted for: kept once per pair, or dropped with a reason.
    ratings = ml_raw.ratings.ratings
    assert report["rows"] == len(ratings)
    assert report["dropped"]["below_min_weight"] == int((ratings < 4).sum())
    assert sum(report["dropped"].values()) + report["interactions"] == report["rows"]
    assert f"{report['dropped']['below_min_weight']:,}  below_min_weight" in err
    positive_users = {files["user"](u) for u in ml_raw.ratings.users[ratings >= 4].tolist()}
    assert report["users"] == len(positive_users)
    assert report["items_file"]["unknown_ids"] == len(ml_raw.item_ids) - report["items"]
    assert "genre" in report["items_file"]["categorical"]

    # The manifest records the data well enough to read it again to the same interactions.
    ls = LocalStore(store)
    manifest = ls.manifest(result["version"])
    recorded = manifest["training_config"]["data"]
    assert (
        recorded["interactions"] == recorded["files"]["interactions"]["path"] == str(Path(files["args"][1]))
    )
    assert Path(recorded["interactions"]).is_absolute()
    again, _ = load_interactions(DataSpec.from_dict(recorded), progress=False)
    assert again.fingerprint() == manifest["data_fingerprint"]

    app = create_app(Settings(store_uri=str(store), _env_file=None))
    with TestClient(app) as client:
        uid = files["user"](ml_raw.ratings.users[ratings >= 4][0])
        resp = client.get("/recommend", params={"user_id": uid, "k": 10})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["strategy"] == "personalized"
        returned = [it["item_id"] for it in body["items"]]
        assert len(returned) == 10
        assert set(returned) <= set(files["genres"])  # the file's own item ids

        horror = {"user_id": uid, "k": 10, "item_filter": {"include": {"genre": ["Horror"]}}}
        resp = client.post("/recommend", json=horror)
        assert resp.status_code == 200, resp.text
        filtered = [it["item_id"] for it in resp.json()["items"]]
        assert filtered
        assert all("Horror" in files["genres"][i] for i in filtered)

        no_drama = {"user_id": uid, "k": 10, "item_filter": {"exclude": {"genre": ["Drama"]}}}
        resp = client.post("/recommend", json=no_drama)
        assert resp.status_code == 200, resp.text
        assert all("Drama" not in files["genres"][it["item_id"]] for it in resp.json()["items"])
