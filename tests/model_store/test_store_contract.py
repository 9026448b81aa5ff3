"""The store contract, run against every backend (local folder, S3 through moto's server).

Publish, load, verify, promote, rollback, gc, crash safety and concurrent publishers behave the
same whatever holds the bytes; what only one backend does is in ``test_local_backend.py`` and
``test_s3_backend.py``.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
from bundle_faults import FAULTS
from store_backends import StoreUnderTest

import model_store.store as store_module
from model_store import (
    BundleError,
    ChecksumMismatch,
    CurrentMoved,
    InconsistentBundle,
    MissingFile,
    ModelStore,
    NoModelPublished,
    SchemaVersionError,
    StoreError,
    StoreNotFound,
    VersionNotFound,
    open_store,
)
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel


@pytest.fixture
def model(trained: tuple[RecommenderModel, dict]) -> RecommenderModel:
    return trained[0]


def publish_new(store: ModelStore, model: RecommenderModel, **kw) -> str:
    return store.publish(clone_model(model, new_version_id()), **kw)


def bundle_keys(backend: StoreUnderTest, version: str) -> set[str]:
    prefix = f"versions/{version}/"
    return {k[len(prefix) :] for k in backend.stored_keys() if k.startswith(prefix)}


def test_publish_then_load_answers_identically(
    store_backend: StoreUnderTest, model: RecommenderModel
) -> None:
    store = store_backend.open()
    version = publish_new(store, model, metrics={"recall@10": 0.5})
    assert store.list_versions() == [version]
    assert store.current_version() == version
    assert store.manifest(version)["metrics"] == {"recall@10": 0.5}
    loaded, _ = store_backend.open().load()
    assert loaded.version == version
    users = np.arange(min(20, model.n_users))
    for a, b in zip(model.recommend(users, 10), loaded.recommend(users, 10), strict=True):
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


def test_manifest_describes_every_stored_file(store_backend: StoreUnderTest, model: RecommenderModel) -> None:
    store = store_backend.open()
    version = publish_new(
        store, model, training_config={"dim": 16}, metrics={"recall@10": 0.5}, data_fingerprint="abc123"
    )
    m = store.manifest(version)
    assert m["version"] == version and m["schema_version"] == 1
    assert m["training_config"] == {"dim": 16} and m["data_fingerprint"] == "abc123"
    assert m["created_at"].startswith(version[:4])
    assert set(m["files"]) == bundle_keys(store_backend, version) - {"manifest.json"}
    for name, entry in m["files"].items():
        assert entry["size"] == len(store_backend.get(f"versions/{version}/{name}"))
        assert len(entry["sha256"]) == 64


def test_versions_sort_by_publish_time(store_backend: StoreUnderTest, model: RecommenderModel) -> None:
    store = store_backend.open()
    published = [publish_new(store, model) for _ in range(3)]
    assert store.list_versions() == published
    assert store.current_version() == published[-1]


def test_empty_store_has_no_current(store_backend: StoreUnderTest) -> None:
    store = store_backend.open()
    assert store.list_versions() == []
    assert store.previous_version() is None
    with pytest.raises(NoModelPublished, match="no model published"):
        store.current_version()
    with pytest.raises(NoModelPublished):
        store.load()
    with pytest.raises(VersionNotFound):
        store.verify("20260101T000000000000Z-0000")
    with pytest.raises(VersionNotFound):
        store.verify("../escape")
    with pytest.raises(StoreError, match="nothing to roll back"):
        store.rollback()


def test_a_store_that_does_not_exist_is_an_error_naming_it(store_backend: StoreUnderTest) -> None:
    uri = store_backend.missing_uri()
    store = open_store(uri)
    reads_and_admin = {
        "list": store.list_versions,
        "current": store.current_version,
        "verify": lambda: store.verify("20260101T000000000000Z-0000"),
        "promote": lambda: store.promote("20260101T000000000000Z-0000"),
        "rollback": store.rollback,
        "gc": lambda: store.gc(keep=1),
    }
    for name, call in reads_and_admin.items():
        with pytest.raises(StoreNotFound, match=re.escape(uri)):
            call()
            pytest.fail(f"{name} on a missing store did not raise")
    # Reading (or a refused admin command) never creates the store as a side effect.
    with pytest.raises(StoreNotFound):
        open_store(uri).list_versions()


@pytest.mark.parametrize("dies_in", ["write_bundle", "commit"])
def test_publish_that_dies_leaves_nothing_visible(
    store_backend: StoreUnderTest, model: RecommenderModel, monkeypatch: pytest.MonkeyPatch, dies_in: str
) -> None:
    store = store_backend.open()
    good = publish_new(store, model)

    def die(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    # Dies while writing the files, or after every file is written and verified, just before the
    # bundle becomes visible.
    monkeypatch.setattr(store_module if dies_in == "write_bundle" else store.backend, dies_in, die)
    with pytest.raises(OSError, match="disk full"):
        publish_new(store, model)
    assert store.list_versions() == [good]
    assert store.current_version() == good
    store.gc(keep=10)
    left = {k for k in store_backend.stored_keys() if not k.startswith(f"versions/{good}/")}
    assert left <= {"CURRENT", "HISTORY", ".lock"}  # the local lock file stays; it holds no data


def test_killed_publisher_leftovers_are_invisible_and_collected(
    store_backend: StoreUnderTest, model: RecommenderModel
) -> None:
    store = store_backend.open()
    good = publish_new(store, model)
    # What SIGKILL in the middle of a publish leaves behind: part of a bundle in staging.
    leftover = ".staging/20991231T000000000000Z-dead.x1/user_emb.npy"
    store_backend.put(leftover, b"\x93NUMPY partial")
    assert store.list_versions() == [good]
    assert store.current_version() == good
    assert store.gc(keep=5) == []
    assert leftover not in store_backend.stored_keys()


def test_concurrent_publishers_do_not_corrupt_the_store(
    store_backend: StoreUnderTest, model: RecommenderModel
) -> None:
    published: list[str] = []
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            for _ in range(2):
                # Each thread its own store object: the lock must work across handles.
                published.append(publish_new(store_backend.open(), model))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = store_backend.open()
    assert store.list_versions() == sorted(published)
    for v in published:
        store.verify(v)
    # Every publish went through the lock: the history is a full, duplicate-free record.
    assert sorted(store.history()) == sorted(published)
    assert store.history()[-1] == store.current_version()


def test_promote_rollback_history(store_backend: StoreUnderTest, model: RecommenderModel) -> None:
    store = store_backend.open()
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


def test_promote_refuses_a_damaged_version(store_backend: StoreUnderTest, model: RecommenderModel) -> None:
    store = store_backend.open()
    a = publish_new(store, model)
    b = publish_new(store, model, make_current=False)
    store_backend.damage(b, "checksum")
    with pytest.raises(ChecksumMismatch, match=store_backend.file_uri(b, "item_emb.npy").replace(".", r"\.")):
        store.promote(b)
    assert store.current_version() == a


def test_promote_with_an_expected_current_is_a_compare_and_set(
    store_backend: StoreUnderTest, model: RecommenderModel
) -> None:
    """What keeps two retrains from both publishing: the one whose base is no longer CURRENT loses."""
    store = store_backend.open()
    base = publish_new(store, model)
    mine = publish_new(store, model, make_current=False)
    theirs = publish_new(store, model)  # another writer got there first
    with pytest.raises(CurrentMoved, match=f"CURRENT is {theirs}, not {base}"):
        store.promote(mine, expect_current=base)
    assert store.current_version() == theirs
    store.promote(mine, expect_current=theirs)
    assert store.current_version() == mine


def test_rollback_skips_a_version_removed_behind_its_back(
    store_backend: StoreUnderTest, model: RecommenderModel
) -> None:
    store = store_backend.open()
    a, b, _ = (publish_new(store, model) for _ in range(3))
    store.backend.delete_version(b)
    assert store.rollback() == a


def test_gc_keeps_newest_current_and_previous(store_backend: StoreUnderTest, model: RecommenderModel) -> None:
    store = store_backend.open()
    versions = [publish_new(store, model) for _ in range(5)]
    store.promote(versions[0])  # current = v0, previous = v4
    assert store.gc(keep=1) == versions[1:4]
    assert store.list_versions() == [versions[0], versions[4]]
    assert all(not bundle_keys(store_backend, v) for v in versions[1:4])  # the bytes went too
    assert store.rollback() == versions[4]  # current = v4, previous = v0: both protected
    assert store.gc(keep=0) == []
    assert store.list_versions() == [versions[0], versions[4]]


def test_gc_never_removes_current_or_previous_even_with_keep_zero(
    store_backend: StoreUnderTest, model: RecommenderModel
) -> None:
    store = store_backend.open()
    versions = [publish_new(store, model) for _ in range(3)]
    assert store.gc(keep=0) == versions[:1]
    assert store.list_versions() == versions[1:]
    assert store.rollback() == versions[1]


@pytest.mark.parametrize("fault", FAULTS)
def test_damaged_bundle_is_refused_naming_the_file(
    store_backend: StoreUnderTest, model: RecommenderModel, fault: str
) -> None:
    store = store_backend.open()
    version = publish_new(store, model)
    bad_file = store_backend.damage(version, fault)
    with pytest.raises(BundleError) as info:
        store.load(version)
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
    else:  # named by its place in the store, never by a temporary download path
        assert store_backend.file_uri(version, bad_file) in str(info.value)
        with pytest.raises(BundleError, match=bad_file.replace(".", r"\.")):
            store.verify(version)


def test_manifest_must_name_its_own_version(store_backend: StoreUnderTest, model: RecommenderModel) -> None:
    store = store_backend.open()
    a = publish_new(store, model)
    copy = "20991231T000000000000Z-copy"
    for name in sorted(bundle_keys(store_backend, a), key=lambda n: n == "manifest.json"):  # manifest last
        store_backend.put(f"versions/{copy}/{name}", store_backend.get(f"versions/{a}/{name}"))
    with pytest.raises(InconsistentBundle, match="manifest names version"):
        store.load(copy)
