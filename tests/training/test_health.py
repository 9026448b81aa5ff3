"""Loader errors must point at the exact file and line, and at RECSERVE_DATA_DIR for a missing folder."""

from pathlib import Path

import numpy as np
import pytest

from training.health import DATA_ENV_VAR, DataFormatError, load_health, split_validation


def _write_dataset(folder: Path, train: str, test: str = "user_procid\titem_procid\n0\t1\n") -> Path:
    ds = folder / "amazon2014-health"
    ds.mkdir(parents=True)
    (ds / "train.tsv").write_text(train)
    (ds / "test.tsv").write_text(test)
    return ds


def test_loads_valid_files_from_root_or_dataset_folder(tmp_path: Path) -> None:
    ds = _write_dataset(tmp_path, "user_procid\titem_procid\n0\t0\n1\t2\n")
    for where in (tmp_path, ds):
        data = load_health(where)
        assert (data.n_users, data.n_items) == (2, 3)
        assert data.train_users.dtype == np.int64
        assert data.test_items.tolist() == [1]


@pytest.mark.parametrize(
    ("row", "what"),
    [("1\tabc", "integers"), ("1\t2\t3", "2 tab-separated fields"), ("-1\t2", "negative"), ("", "empty")],
)
def test_malformed_row_names_file_and_line(tmp_path: Path, row: str, what: str) -> None:
    ds = _write_dataset(tmp_path, f"user_procid\titem_procid\n0\t0\n{row}\n")
    with pytest.raises(DataFormatError) as info:
        load_health(tmp_path)
    message = str(info.value)
    assert f"{ds / 'train.tsv'}:3" in message
    assert what in message
    assert isinstance(info.value, ValueError)


def test_bad_header_is_line_one(tmp_path: Path) -> None:
    _write_dataset(tmp_path, "user,item\n0\t0\n")
    with pytest.raises(DataFormatError, match=r"train\.tsv:1: expected header"):
        load_health(tmp_path)


def test_missing_folder_names_env_var_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv(DATA_ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError) as info:
        load_health()
    assert DATA_ENV_VAR in str(info.value)
    assert str(missing) in str(info.value)


def test_validation_split_is_per_user_seeded_and_disjoint() -> None:
    users = np.repeat(np.arange(4), [1, 10, 20, 3])
    items = np.concatenate([np.arange(n) for n in (1, 10, 20, 3)])
    fu, fi, vu, vi = split_validation(users, items, fraction=0.1, seed=3)
    assert np.bincount(vu, minlength=4).tolist() == [0, 1, 2, 1]
    assert len(fu) + len(vu) == len(users)
    assert not set(zip(fu.tolist(), fi.tolist(), strict=True)) & set(
        zip(vu.tolist(), vi.tolist(), strict=True)
    )
    again = split_validation(users, items, fraction=0.1, seed=3)
    assert np.array_equal(again[3], vi)
