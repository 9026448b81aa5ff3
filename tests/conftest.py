"""Shared fixtures: a small synthetic model trained once per session, a store holding it, a client,
an empty store on every backend (``store_backend``), and PostgreSQL at 127.0.0.1:5432 (database
``test``, trust auth, as ``root`` or ``postgres``) in a schema of the test's own, created for it
and dropped afterwards; PostgreSQL tests are skipped, with the reason, only when no server
answers there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pg_support import PG_USERS, pg_admin_url, private_schema_url
from store_backends import BACKENDS, LocalStoreUnderTest, S3StoreUnderTest, StoreUnderTest

from model_store import LocalStore
from recommender.model import RecommenderModel
from service.app import create_app
from service.settings import Settings
from training.data import InteractionData
from training.mf import MFConfig
from training.pipeline import TrainConfig, train_model
from training.ranker_train import RankerConfig
from training.synthetic import SyntheticConfig, generate

SMALL = SyntheticConfig(n_users=300, n_items=200, min_interactions=8, max_interactions=20, seed=7)
FAST = TrainConfig(
    mf=MFConfig(dim=16, epochs=20, n_negatives=64, batch_size=256, tau=0.3, lr=3e-2),
    ranker=RankerConfig(hidden_units=16, num_layers=2, epochs=2),
    n_candidates=50,
    seed=7,
)


@pytest.fixture(scope="session")
def small_data() -> InteractionData:
    return generate(SMALL)


@pytest.fixture(scope="session")
def trained(small_data: InteractionData) -> tuple[RecommenderModel, dict]:
    """(model, metrics) trained once per test session on the small synthetic set."""
    return train_model(small_data, FAST, progress=False)


@pytest.fixture(scope="session")
def published_store(trained: tuple[RecommenderModel, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store folder whose CURRENT is the session's trained model. Treat as read-only."""
    root = tmp_path_factory.mktemp("store")
    model, metrics = trained
    LocalStore(root).publish(model, metrics=metrics)
    return root


@pytest.fixture
def client(published_store: Path) -> Iterator[TestClient]:
    """An in-process client of a fresh app serving the published model."""
    app = create_app(Settings(store_uri=str(published_store), _env_file=None))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 HTTP server on loopback (moto's server mode), started once, only if a test asks."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_store(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3StoreUnderTest:
    """An empty store in a fresh bucket; boto3 finds the server through the standard AWS_* variables."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return S3StoreUnderTest(f"recserve-{uuid.uuid4().hex[:12]}", "models/prod")


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUnderTest:
    """An empty model store on each backend in turn: a store contract test is written once."""
    if request.param == "s3":
        return request.getfixturevalue("s3_store")
    return LocalStoreUnderTest(tmp_path / "store")


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = pg_admin_url()
    if url is None:
        pytest.skip(f"no PostgreSQL answers at 127.0.0.1:5432 (database test, users {PG_USERS})")
    return url


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped (with its tables) afterwards."""
    with private_schema_url(pg_url, f"recserve_test_{uuid.uuid4().hex[:12]}") as url:
        yield url
