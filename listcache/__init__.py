"""The precomputed-list contract between its one writer (the precompute job) and its reader (the service).

Neither side owns it, so it lives here and imports neither ``service`` nor ``training``:

=====================  ===============================================================
``config``             :data:`DEFAULTS`: every default (prefix, TTL, N, timeouts, …), once
``keys``               ``{prefix}:{version}:rec|sim:{id}`` and ``{prefix}:{version}:ready``
``codec``              packed list blob (format version, int32 indices, float32 scores), marker
``rule``               :func:`answer_from_cached`: can a stored list answer, on item indices
``backend``            :class:`ListBackend` protocol, :class:`CacheObserver`, :class:`WriteError`
``memory``             :class:`MemoryBackend` (in-process LRU)
``redis_backend``      :class:`RedisBackend` (+ ``breaker``: :class:`CircuitBreaker`)
``redis_client``       which Redis a URL names: one server, a Redis Cluster, a Sentinel group
``cache``              :class:`ListCache`: the reader's lookup/store over one backend
``precompute``         the writer: every user's and item's top-N, ``ready`` marker last
``ray_engine``         the same job on a Ray cluster (Ray Data; extra ``recserve[distributed]``)
=====================  ===============================================================

``listcache.precompute``, ``listcache.redis_backend`` (with ``redis_client``) and
``listcache.ray_engine`` are imported on demand (the first calls the model, the second imports
redis-py, the last Ray).
"""

from listcache.backend import CacheObserver, ListBackend, NullObserver, StoredList, WriteError
from listcache.breaker import CircuitBreaker
from listcache.cache import ListCache, Lookup
from listcache.codec import FORMAT_VERSION, DecodeError, decode_list, encode_list, ready_marker
from listcache.config import DEFAULTS, ListCacheDefaults
from listcache.keys import KINDS, list_key, ready_key
from listcache.memory import MemoryBackend
from listcache.rule import answer_from_cached

__all__ = [
    "DEFAULTS",
    "FORMAT_VERSION",
    "KINDS",
    "CacheObserver",
    "CircuitBreaker",
    "DecodeError",
    "ListBackend",
    "ListCache",
    "ListCacheDefaults",
    "Lookup",
    "MemoryBackend",
    "NullObserver",
    "StoredList",
    "WriteError",
    "answer_from_cached",
    "decode_list",
    "encode_list",
    "list_key",
    "ready_key",
    "ready_marker",
]
