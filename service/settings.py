"""The one settings class of the service; every field can be set as ``RECSERVE_<FIELD>``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service configuration, read from the environment (prefix ``RECSERVE_``) or a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="RECSERVE_", env_file=".env", extra="ignore")

    store_uri: str = Field("var/store", description="Model store: a filesystem path.")
    redis_url: str | None = Field(None, description="Redis for precomputed lists; unset = in-process cache.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="0 picks a free port.")
    n_candidates: int | None = Field(
        None, ge=1, le=10_000, description="Retrieval candidates per request; unset = the bundle's own value."
    )
    default_k: int = Field(10, ge=1)
    max_k: int = Field(500, ge=1, description="Largest k a request may ask for.")
    torch_threads: int = Field(1, ge=1, description="Intra-op threads for the ranker (1 keeps latency flat).")
    log_level: str = "info"
    bench_endpoints: bool = Field(
        False, description="Serve GET /bench/baseline (constant JSON): the benchmark's reference endpoint."
    )
