"""The local model store: publish, verify, promote, rollback, gc, crash safety, locking."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from bundle_faults import FAULTS, damage

from model_store import (
    BundleError,
    ChecksumMismatch,
    InconsistentBundle,
    LocalStore,
    MissingFile,
    NoModelPublished,
    SchemaVersionError,
    StoreError,
    VersionNotFound,
    open_store,
)
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel


@pytest.fixture
def model(trained: tuple[RecommenderModel, dict]) -> RecommenderModel:
    return trained[0]


def publish_new(store: LocalStore, model: RecommenderModel, **kw) -> str:
    return store.publish(clone_model(model, new_version_id()), **kw)


def test_manifest_describes_every_file(tmp_path: Path, model: RecommenderModel) -> None:
    store = LocalStore(tmp_path)
    version = store.publish(
        clone_model(model, new_version_id()),
        training_config={"dim": 16},
        metrics={"recall@10": 0.5},
        data_fingerprint="abc123",
    )
    m = store.manifest(version)
    assert m["version"] == version and m["schema_version"] == 1
    assert m["training_config"] == {"dim": 16} and m["metrics"] == {"recall@10": 0.5}
    assert m["data_fingerprint"] == "abc123" and m["created_at"].startswith(version[:4])
    on_disk = {p.name for p in store.bundle_path(version).iterdir()} - {"manifest.json"}
    assert set(m["files"]) == on_disk
    for name, entry in m["files"].items():
        assert entry["size"] == (store.bundle_path(version) / name).stat().st_size
        assert len(entry["sha256"]) == 64


def test_round_trip_answers_identically(tmp_path: Path, model: RecommenderModel) -> None:
    store = LocalStore(tmp_path)
    version = publish_new(store, model)
    loaded, _ = store.load()
    assert loaded.version == version
    users = np.arange(min(20, model.n_users))
    for a, b in zip(model.recommend(users, 10), loaded.recommend(users, 10), strict=True):
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


def test_versions_sort_by_publish_time(tmp_path: Path, model: RecommenderModel) -> None:
    store = LocalStore(tmp_path)
    published = [publish_new(store, model) for _ in range(3)]
    assert store.list_versions() == published
    assert store.current_version() == published[-1]


def test_empty_store_has_no_current(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.list_versions() == []
    with pytest.raises(NoModelPublished):
        store.current_version()
    with pytest.raises(VersionNotFound):
        store.verify("20260101T000000000000Z-0000")
    with pytest.raises(VersionNotFound):
        store.verify("../escape")


def test_publish_that_dies_half_way_leaves_nothing_visible(
    tmp_path: Path, model: RecommenderModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    good = publish_new(store, model)

    def die(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    # Dies after every file is written and verified, just before the bundle becomes visible.
    monkeypatch.setattr(store.backend, "commit", die)
    with pytest.raises(OSError, match="disk full"):
        publish_new(store, model)
    assert store.list_versions() == [good]
    assert store.current_version() == good
    assert list((tmp_path / ".staging").iterdir()) == []


def test_killed_publisher_leftovers_are_invisible_and_collected(
    tmp_path: Path, model: RecommenderModel
) -> None:
    store = LocalStore(tmp_path)
    good = publish_new(store, model)
    # What SIGKILL in the middle of write_bundle leaves behind: a partial folder in staging.
    leftover = tmp_path / ".staging" / "20991231T000000000000Z-dead.x1"
    leftover.mkdir(parents=True)
    (leftover / "user_emb.npy").write_bytes(b"\x93NUMPY partial")
    assert store.list_versions() == [good]
    assert store.current_version() == good
    assert store.gc(keep=5) == []
    assert not leftover.exists()


def test_concurrent_publishers_do_not_corrupt_the_store(tmp_path: Path, model: RecommenderModel) -> None:
    store = LocalStore(tmp_path)
    published: list[str] = []
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            for _ in range(3):
                # Each thread its own store object: the lock must work across handles.
                published.append(publish_new(LocalStore(tmp_path), model))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(published) == store.list_versions()
    for v in published:
        store.verify(v)
    assert store.current_version() in published
    # Every publish went through the lock: the history is a full, duplicate-free record.
    assert sorted(store.history()) == sorted(published)
    assert store.history()[-1] == store.current_version()


def test_promote_rollback_history(tmp_path: Path, model: RecommenderModel) -> None:
    store = LocalStore(tmp_path)
    a, b, c = (publish_new(store, model) for _ in range(3))
    assert store.previous_version() == b
    assert store.rollback() == b
    assert store.current_version() == b
    assert store.rollback() == a
    with pytest.raises(StoreError, match="nothing to roll back"):
        store.rollback()
    store.promote(c)
    assert store.current_version() == c
    assert store.previous_version() == a
    assert store.rollback() == a


def test_promote_refuses_a_damaged_version(tmp_path: Path, model: RecommenderModel) -> None:
    store = LocalStore(tmp_path)
    a = publish_new(store, model)
    b = publish_new(store, model, make_current=False)
    damage(store.bundle_path(b), "checksum")
    with pytest.raises(ChecksumMismatch, match=r"item_emb\.npy"):
        store.promote(b)
    assert store.current_version() == a


def test_rollback_skips_a_version_removed_behind_its_back(tmp_path: Path, model: RecommenderModel) -> None:
    store = LocalStore(tmp_path)
    a, b, _ = (publish_new(store, model) for _ in range(3))
    store.backend.delete_version(b)
    assert store.rollback() == a


def test_gc_keeps_newest_current_and_previous(tmp_path: Path, model: RecommenderModel) -> None:
    store = LocalStore(tmp_path)
    versions = [publish_new(store, model) for _ in range(5)]
    store.promote(versions[0])  # current = v0, previous = v4
    removed = store.gc(keep=1)
    assert removed == versions[1:4]
    assert store.list_versions() == [versions[0], versions[4]]
    assert store.rollback() == versions[4]  # current = v4, previous = v0: both protected
    assert store.gc(keep=0) == []
    assert store.list_versions() == [versions[0], versions[4]]


def test_gc_never_removes_current_or_previous_even_with_keep_zero(
    tmp_path: Path, model: RecommenderModel
) -> None:
    store = LocalStore(tmp_path)
    versions = [publish_new(store, model) for _ in range(3)]
    assert store.gc(keep=0) == versions[:1]
    assert store.list_versions() == versions[1:]
    assert store.rollback() == versions[1]


@pytest.mark.parametrize("fault", FAULTS)
def test_damaged_bundle_is_refused_naming_the_file(
    tmp_path: Path, model: RecommenderModel, fault: str
) -> None:
    store = LocalStore(tmp_path)
    version = publish_new(store, model)
    bad_file = damage(store.bundle_path(version), fault)
    with pytest.raises(BundleError) as info:
        store.load(version)
    assert bad_file in str(info.value) or fault in ("dims", "pickle")
    expected = {
        "checksum": ChecksumMismatch,
        "truncated": ChecksumMismatch,
        "missing_file": MissingFile,
        "missing_manifest": MissingFile,
        "schema": SchemaVersionError,
        "dims": InconsistentBundle,
        "pickle": InconsistentBundle,
    }[fault]
    assert isinstance(info.value, expected)
    if fault in ("dims", "pickle"):  # checksums agree: only decoding can catch these
        store.verify(version)
        assert ("dimension 7" if fault == "dims" else "pickle") in str(info.value)
    else:
        with pytest.raises(BundleError, match=bad_file.replace(".", r"\.")):
            store.verify(version)


def test_manifest_must_name_its_own_version(tmp_path: Path, model: RecommenderModel) -> None:
    store = LocalStore(tmp_path)
    a = publish_new(store, model)
    copy = tmp_path / "versions" / "20991231T000000000000Z-copy"
    copy.mkdir()
    for f in store.bundle_path(a).iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    with pytest.raises(InconsistentBundle, match="manifest names version"):
        store.load(copy.name)


def test_open_store_uris(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert open_store(f"file://{tmp_path}").root == tmp_path
    with pytest.raises(StoreError, match="unsupported store URI"):
        open_store("gs://bucket/x")
