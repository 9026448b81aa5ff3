"""The MovieLens-100K loader: parsing, side features, the time split, and its error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.movielens import (
    AGE_BUCKETS,
    DATA_DIR_ENV,
    GENRES,
    MovieLensError,
    age_bucket,
    data_folder,
    load_ml100k,
    read_ml100k,
    split_by_time,
)


def _append(path: Path, line: str) -> int:
    """Append a line; return its 1-based line number."""
    text = path.read_text(encoding="latin-1")
    path.write_text(text + line + "\n", encoding="latin-1")
    return text.count("\n") + 1


def test_reads_all_three_files(tiny_ml: Path) -> None:
    ml = read_ml100k(tiny_ml)
    assert len(ml.user_ids) == 40 and len(ml.item_ids) == 60
    assert len(ml.ratings.users) == 40 * 25
    assert ml.titles[0] == "Misérables, Les (1995)"  # latin-1 decoded
    assert np.isnan(ml.release_year[-1])  # empty release date is allowed (u.item has one)
    assert ml.genres.shape == (60, len(GENRES))
    assert ml.skipped == []


def test_side_features_and_split(tiny_ml: Path) -> None:
    ml = read_ml100k(tiny_ml)
    d = load_ml100k(raw=ml)
    pos = ml.ratings.ratings >= 4
    assert len(d.train_users) + len(d.test_users) == int(pos.sum())
    # user features: age one-hot, is_female, occupation one-hot, log activity of *train* positives
    names = d.user_feature_names
    assert names[: len(AGE_BUCKETS)] == list(AGE_BUCKETS)
    onehot = d.user_features[:, : len(AGE_BUCKETS)]
    assert np.array_equal(onehot.argmax(axis=1), age_bucket(ml.age))
    assert np.array_equal(d.user_features[:, names.index("is_female")], [g == "F" for g in ml.gender])
    occ_cols = [j for j, n in enumerate(names) if n.startswith("occ_")]
    assert np.all(d.user_features[:, occ_cols].sum(axis=1) == 1)
    activity = np.bincount(d.train_users, minlength=d.n_users)
    assert np.allclose(d.user_features[:, names.index("log_activity")], np.log1p(activity))
    # items: genres are the tags and the filterable attribute; missing year → median year
    assert np.array_equal(d.item_tags, ml.genres)
    assert d.item_attributes["genre"][0] == [GENRES[j] for j in np.flatnonzero(ml.genres[0])]
    year = d.item_features[:, d.item_feature_names.index("release_year")]
    assert year[-1] == np.nanmedian(ml.release_year)
    # time split: every test positive of a user is later than (or as late as) all their train ones
    for u in range(d.n_users):
        tr = d.train_time[d.train_users == u]
        te_items = d.test_items[d.test_users == u]
        if len(te_items) == 0:
            continue
        user_rows = (ml.ratings.users == int(d.user_ids[u])) & pos
        te_time = ml.ratings.timestamps[
            user_rows & np.isin(ml.ratings.items, [int(d.item_ids[i]) for i in te_items])
        ]
        assert len(tr) == 0 or te_time.min() >= tr.max()
        n = len(tr) + len(te_items)
        assert len(te_items) == max(1, round(0.2 * n))


def test_split_by_time_breaks_ties_by_line_and_keeps_one() -> None:
    users = np.array([0, 0, 0, 0, 0, 1])
    times = np.array([5, 5, 5, 1, 2, 9])
    lines = np.array([1, 3, 2, 4, 5, 6])
    test = split_by_time(users, times, lines, 0.2)
    # user 0: 5 rows → 1 test row, the latest time with the highest line; user 1: its only row
    assert test.tolist() == [False, True, False, False, False, True]


def test_default_folder_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert data_folder() == tmp_path / "ml-100k"
    monkeypatch.delenv(DATA_DIR_ENV)
    assert data_folder().parts[-3:] == ("shared", "data", "ml-100k")


def test_missing_folder_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MovieLensError, match=DATA_DIR_ENV) as exc:
        read_ml100k(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "ml-100k") in str(exc.value)


def test_missing_file_is_named(tiny_ml: Path) -> None:
    (tiny_ml / "ml-100k" / "u.user").unlink()
    with pytest.raises(MovieLensError, match=r"missing u\.user"):
        read_ml100k(tiny_ml)


@pytest.mark.parametrize(
    ("file", "row", "message"),
    [
        ("u.data", "1\t2\t5", "expected 4 tab-separated fields"),
        ("u.data", "1\t2\tfive\t880000000", "rating must be an integer, got 'five'"),
        ("u.data", "1\t2\t7\t880000000", r"rating must be in 1\.\.5, got 7"),
        ("u.user", "99|abc|M|writer|12345", "age must be an integer"),
        ("u.user", "99|30|X|writer|12345", "gender must be 'M' or 'F'"),
        ("u.item", "99|T|32-Foo-1995||u|" + "|".join(["0"] * 19), "release date must look like"),
        ("u.item", "99|T|01-Jan-1995||u|" + "|".join(["2"] * 19), "genre flags must be 0 or 1"),
        ("u.item", "99|T|01-Jan-1995", "expected 24 '|'-separated fields"),
    ],
)
def test_malformed_row_names_file_and_line(tiny_ml: Path, file: str, row: str, message: str) -> None:
    path = tiny_ml / "ml-100k" / file
    line = _append(path, row)
    with pytest.raises(MovieLensError, match=message) as exc:
        read_ml100k(tiny_ml)
    assert str(exc.value).startswith(f"{path}:{line}: ")
    assert exc.value.line == line


def test_unknown_ids_are_skipped_and_reported_or_refused(tiny_ml: Path) -> None:
    path = tiny_ml / "ml-100k" / "u.data"
    bad_user = _append(path, "0\t5\t5\t883603013\t")  # unknown user, trailing tab (seen in the wild)
    bad_item = _append(path, "3\t9999\t4\t883603013")
    ml = read_ml100k(tiny_ml)
    assert ml.skipped == [bad_user, bad_item]
    assert len(ml.ratings.users) == 40 * 25
    with pytest.raises(MovieLensError, match=r"user id 0 is not in u\.user") as exc:
        read_ml100k(tiny_ml, on_unknown="error")
    assert exc.value.line == bad_user


def test_user_without_training_positives_is_kept(tiny_ml: Path) -> None:
    path = tiny_ml / "ml-100k" / "u.user"
    _append(path, "41|30|F|artist|99999")
    d = load_ml100k(tiny_ml)
    u = d.user_ids.index("41")
    assert u not in set(d.train_users.tolist()) | set(d.test_users.tolist())
    assert d.user_segment is not None and d.user_segment[u] == age_bucket(np.array([30]))[0] * 2 + 1


@pytest.mark.slow
def test_real_data_loads(real_ml_dir: Path) -> None:
    d = load_ml100k(real_ml_dir)
    assert (d.n_users, d.n_items) == (943, 1682)
    # every user with a positive has at least one test positive
    has_pos = np.union1d(d.train_users, d.test_users)
    assert set(np.unique(d.test_users).tolist()) == set(has_pos.tolist())
