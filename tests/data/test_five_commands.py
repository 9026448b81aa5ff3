"""docs/data.md's "five commands", as a user types them: ``data inspect`` → ``train --interactions``
→ ``recserve serve`` (a real process) → ``GET /recommend`` → ``POST /recommend`` with an
``item_filter`` on an items-file attribute. A small synthetic CSV, so the path runs in seconds
without MovieLens (``test_ingest_ml100k.py`` runs it on MovieLens-100K, in process)."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmarks.procs import ServiceProcess

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
GENRES = ["Horror", "Comedy", "Drama"]


def write_files(folder: Path, users: int = 200, items: int = 90, seed: int = 0) -> dict[str, str]:
    """ratings.csv (user_id,item_id,rating,timestamp) and items.csv (item_id,genre,year) whose
    ids are strings a model would not invent ("u007", "film-12"); returns each item's genres."""
    rng = np.random.default_rng(seed)
    item_genre = {f"film-{i}": GENRES[i % 3] + (";Comedy" if i % 7 == 0 else "") for i in range(items)}
    names = list(item_genre)
    with (folder / "ratings.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["user_id", "item_id", "rating", "timestamp"])
        t = 1_600_000_000
        for u in range(users):
            taste = u % 3  # each user mostly rates one genre
            pool = [n for k, n in enumerate(names) if k % 3 == taste] + names[:10]
            for n in rng.choice(pool, size=20, replace=False):
                t += int(rng.integers(1, 100))
                out.writerow([f"u{u:03d}", n, int(rng.integers(1, 6)), t])
    with (folder / "items.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["item_id", "genre", "year"])
        for k, (n, g) in enumerate(item_genre.items()):
            out.writerow([n, g, 1980 + k % 30])
    return item_genre


def test_the_five_commands_of_docs_data_md(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    genres = write_files(tmp_path)
    ratings, items, store = tmp_path / "ratings.csv", tmp_path / "items.csv", tmp_path / "store"

    # 1. check the file
    code, out, err = run_cli("data", "inspect", ratings, "--weight-col", "rating", "--min-weight", "4")
    assert code == 0, err
    assert "below_min_weight" in out and "rows        4,000" in out

    # 2. train and publish (few epochs: the path is under test, not the model's quality)
    small = ("--epochs", "2", "--dim", "16", "--ranker-epochs", "2")
    argv = ["train", "--interactions", ratings, "--weight-col", "rating", "--min-weight", "4"]
    argv += ["--items", items, "--list-sep", ";", "--store", store, *small, "--json"]
    code, out, err = run_cli(*argv)
    assert code == 0, err
    version = json.loads(out)["version"]
    assert "filterable attributes: genre" in err

    # 3. serve it: the real command line, in its own process
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env = {k: v for k, v in env.items() if not k.startswith("RECSERVE_")}
    serve = [sys.executable, "-m", "recserve.cli", "serve", "--store", str(store), "--port", "0"]
    service = ServiceProcess(env, tmp_path, command=[*serve, "--host", "127.0.0.1"])
    try:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            # 4. recommendations with the file's own ids
            resp = http.get("/recommend", params={"user_id": "u007", "k": 5})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["model_version"] == version and body["strategy"] == "personalized"
            assert len(body["items"]) == 5 and {it["item_id"] for it in body["items"]} <= set(genres)

            # 5. filter on an items-file attribute
            query = {"user_id": "u007", "k": 5, "item_filter": {"include": {"genre": ["Horror"]}}}
            resp = http.post("/recommend", json=query)
            assert resp.status_code == 200, resp.text
            found = [it["item_id"] for it in resp.json()["items"]]
            assert found and all("Horror" in genres[i].split(";") for i in found)
    finally:
        service.stop()
