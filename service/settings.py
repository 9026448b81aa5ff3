"""The one settings class of the service; every field can be set as ``RECSERVE_<FIELD>``."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from listcache import DEFAULTS as LISTS
from listcache.redis_client import check_url

_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


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
    mmap_bundle: bool = Field(
        False,
        description="Memory-map the embeddings and index vectors from the bundle's files, so worker "
        "processes share one copy (`recserve serve --workers N` turns it on unless set).",
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for /admin/*; unset = the admin endpoints do not exist."
    )
    warmup_queries: int = Field(
        8, ge=0, le=1000, description="Real queries run on a new model before it is swapped in."
    )
    redis_url: str | None = Field(
        None,
        description="Redis for precomputed lists: redis://host:port/db (one server), "
        "redis+cluster://host:port[,host:port…] (Redis Cluster) or "
        "redis+sentinel://host:port[,…]/service (Sentinel); unset = in-process cache.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="0 picks a free port.")
    n_candidates: int | None = Field(
        None, ge=1, le=10_000, description="Retrieval candidates per request; unset = the bundle's own value."
    )
    default_k: int = Field(10, ge=1)
    max_k: int = Field(500, ge=1, description="Largest k a request may ask for.")
    torch_threads: int = Field(1, ge=1, description="Intra-op threads for the ranker (1 keeps latency flat).")
    log_level: str = Field("info", description="Level of the service's logs (uvicorn's included).")
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per line, with request_id (service/logs.py); text: plain."
    )
    access_log: bool = Field(
        False,
        description="One log line per request: method, path, status, duration, model version, request id.",
    )
    access_log_sample_rate: float = Field(
        1.0, ge=0, le=1, description="Share of requests the access log writes; 5xx are always written."
    )
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

    # -- precomputed lists (listcache/; defaults in listcache.config.DEFAULTS) --
    cache_list_size: int = Field(
        LISTS.list_size,
        ge=1,
        le=10_000,
        description="N: length of stored top-N lists; k > N is always computed.",
    )
    cache_size: int = Field(
        LISTS.memory_entries, ge=0, description="In-process LRU entries when no Redis; 0 = no cache."
    )
    redis_prefix: str = Field(
        LISTS.prefix, min_length=1, description="Key prefix: {prefix}:{version}:rec:{id}."
    )
    redis_ttl_s: int = Field(
        LISTS.ttl_s, ge=1, description="TTL of stored lists (precompute and write-back)."
    )
    redis_socket_timeout_s: float = Field(
        LISTS.socket_timeout_s, gt=0, description="Per-command timeout: a slow Redis = miss."
    )
    redis_connect_timeout_s: float = Field(LISTS.connect_timeout_s, gt=0)
    redis_breaker_failures: int = Field(
        LISTS.breaker_failures, ge=1, description="Consecutive errors that open the breaker."
    )
    redis_breaker_reset_s: float = Field(
        LISTS.breaker_reset_s, gt=0, description="Seconds without Redis calls once open."
    )
    redis_ready_check_s: float = Field(
        LISTS.ready_check_s, ge=0, description="How often the ready marker is re-checked."
    )
    redis_write_back: bool = Field(
        LISTS.write_back, description="Store lists computed on a miss (ready versions only)."
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str | None) -> str | None:
        """Refuse a malformed URL at startup, naming the setting, instead of on the first request.

        An empty value (``RECSERVE_REDIS_URL=`` in a compose file) means "no Redis".
        """
        if not value:
            return None
        check_url(value)  # RedisURLError is a ValueError: pydantic names the setting
        return value

    # -- the feedback loop (docs/feedback.md) --
    database_url: str = Field(
        "sqlite:///var/events.db",
        description="Event store: sqlite:///PATH or postgresql://…; tables from `recserve db upgrade`.",
    )
    feedback_types: Annotated[tuple[str, ...], NoDecode] = Field(
        ("view", "click", "purchase", "like", "dislike"),
        description="Event types POST /feedback accepts (comma-separated).",
    )
    feedback_positive_types: Annotated[tuple[str, ...], NoDecode] = Field(
        ("click", "purchase", "like"),
        description="Types that are interactions: recent items at once, training pairs on retrain.",
    )
    feedback_max_batch: int = Field(
        500, ge=1, le=10_000, description="Most events one POST /feedback may carry."
    )
    fresh_max_items: int = Field(
        50,
        ge=1,
        le=1000,
        description="Latest events kept per user for the next request (Redis or in-process).",
    )
    fresh_ttl_s: int = Field(
        172_800,
        ge=1,
        description="Seconds a user's fresh events are kept after their last (> retrain interval).",
    )
    fresh_max_users: int = Field(
        100_000, ge=1, description="Users whose fresh events are kept in-process (without Redis)."
    )

    @field_validator("feedback_types", "feedback_positive_types", mode="before")
    @classmethod
    def _type_list(cls, value: object) -> object:
        """``click,like`` (the environment's form) or a list; names become metric label values,
        so they are short lower-case words."""
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            bad = [v for v in value if not isinstance(v, str) or not _TYPE_NAME.fullmatch(v)]
            if bad:
                raise ValueError(f"event types are 1..32 of a-z, 0-9, _ starting with a letter; got {bad}")
            return tuple(dict.fromkeys(value))
        return value

    @model_validator(mode="after")
    def _positive_types_are_types(self) -> Settings:
        if not self.feedback_types:
            raise ValueError("feedback_types: at least one type")
        extra = sorted(set(self.feedback_positive_types) - set(self.feedback_types))
        if extra:
            raise ValueError(f"feedback_positive_types {extra} are not in feedback_types")
        return self

    bench_endpoints: bool = Field(
        False, description="Serve GET /bench/baseline (constant JSON): the benchmark's reference endpoint."
    )
    micro_batching: bool = Field(
        True,
        description="Answer /recommend and /similar-items in a worker thread, the requests that queued "
        "meanwhile as one batch (one FAISS search, one ranker forward); off = each on the event loop.",
    )
    max_micro_batch: int = Field(32, ge=1, le=1024, description="Most requests in one micro-batch.")
    gil_switch_interval_s: float = Field(
        0.0002,
        gt=0,
        le=0.1,
        description="With micro-batching: how long one thread may keep the GIL from a waiting one "
        "(sys.setswitchinterval; Python's 5 ms default makes the batch worker wait that long after "
        "each search while the event loop runs).",
    )

    # -- operations (docs/operations.md) --
    model_max_age_s: float = Field(
        7 * 86_400,
        ge=0,
        description="Age of the model (from its created_at) above which RecserveModelStale fires; 0 = off.",
    )
    build_revision: str | None = Field(
        None, description="VCS revision of this build (set at image build): a label of recserve_build_info."
    )
    otel_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector to send request traces to (http://host:4318, or the full "
        ".../v1/traces URL); unset = no tracing, no overhead. Needs the `otel` extra.",
    )

    @field_validator("otel_endpoint")
    @classmethod
    def _otel_endpoint_url(cls, value: str | None) -> str | None:
        """An absolute http(s) URL, refused at startup naming the setting; empty = off."""
        if not value:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"an absolute http:// or https:// URL of an OTLP/HTTP collector, got {value!r}")
        return value

    # -- keys on the door (service/auth.py) --
    api_keys: SecretStr | None = Field(
        None, description="Comma-separated keys accepted in X-API-Key by the list endpoints; unset = open."
    )
    api_keys_file: str | None = Field(
        None, description="File of API keys, one per line (# comments), re-read within 1 s of a change."
    )
    metrics_key: SecretStr | None = Field(
        None, description="Bearer token /metrics then requires (Authorization: Bearer ...); unset = open."
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Serve /metrics on this port (same host) instead of the API port."
    )
    dashboard: bool = Field(
        True,
        description="Serve the /dashboard page and its /dashboard/api/* data (model, live metrics, try it).",
    )
