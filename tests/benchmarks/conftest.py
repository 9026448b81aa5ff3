"""A tiny cached catalogue shared by the bench smoke tests (built once per session, in tmp)."""

from __future__ import annotations

import pytest

from benchmarks.catalogue import Catalogue, CatalogueSpec, ensure_catalogue

TINY = CatalogueSpec(n_items=400, n_users=60, n_clusters=8, seen_per_user=5, seed=3)


@pytest.fixture(scope="session")
def tiny_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    return ensure_catalogue(TINY, tmp_path_factory.mktemp("bench"), log=lambda _: None)
