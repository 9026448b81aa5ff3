"""The one settings class of the service; every field can be set as ``RECSERVE_<FIELD>``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service configuration, read from the environment (prefix ``RECSERVE_``) or a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="RECSERVE_", env_file=".env", extra="ignore")

    store_uri: str = Field("var/store", description="Model store: a filesystem path or s3://bucket/prefix.")
    store_poll_interval: float = Field(
        5.0, ge=0, description="Seconds between checks of the store's CURRENT for a new model; 0 = off."
    )
    store_cache_dir: str | None = Field(
        None, description="Where bundles from an s3:// store are downloaded before loading (default: tmp)."
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for /admin/*; unset = the admin endpoints do not exist."
    )
    warmup_queries: int = Field(
        8, ge=0, le=1000, description="Real queries run on a new model before it is swapped in."
    )
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
    max_batch_size: int = Field(
        100, ge=1, le=10_000, description="Most users one /recommend/batch may ask for."
    )
    max_body_bytes: int = Field(
        1_000_000, ge=1024, description="Largest request body accepted; larger ones get a 413."
    )
    cold_start_fallback: Literal["popularity", "error"] = Field(
        "popularity",
        description="Unknown user without recent_item_ids: popular items (within the request's "
        "filter) or a 404 unknown_user.",
    )
