"""What only the local-folder backend does: URIs it accepts, creating a store on first publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store import LocalStore, StoreError, StoreNotFound, open_store
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel


def test_open_store_uris(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert open_store(f"file://{tmp_path}").root == tmp_path
    with pytest.raises(StoreError, match="unsupported store URI"):
        open_store("gs://bucket/x")


def test_first_publish_creates_the_store_but_reading_does_not(
    tmp_path: Path, trained: tuple[RecommenderModel, dict]
) -> None:
    root = tmp_path / "new" / "store"
    with pytest.raises(StoreNotFound, match=str(root)):
        LocalStore(root).list_versions()
    assert not root.exists()
    version = LocalStore(root).publish(clone_model(trained[0], new_version_id()))
    assert LocalStore(root).list_versions() == [version]
    assert LocalStore(root).current_version() == version
