"""Which Redis a URL names: one server, a Redis Cluster, or the primary a Sentinel group names.

=============================================================  ===========================================
``redis://host:port/db``, ``rediss://…``, ``unix:///path``      one server (redis-py ``Redis``)
``redis+cluster://host:port[,host:port…]`` (``rediss+…``)       Redis Cluster (``RedisCluster``): keys are
                                                                spread over 16,384 hash slots and the nodes
``redis+sentinel://host:port[,host:port…]/service[/db]``        the primary Sentinel currently names for
                                                                ``service``: failover, no sharding
=============================================================  ===========================================

The cluster and sentinel schemes are the ones Gorse and most Redis tooling read; the host list
is only where discovery starts (every node of a cluster is found from any one of them).
``user:password@`` before the hosts applies to the data nodes.

Every client made here has the caller's timeouts and ``retries`` client-side retries (the
service passes 0: one round trip, then the breaker decides; the precompute job a few), and no
background health-check pings.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

#: URL schemes :func:`redis_client` accepts (``RECSERVE_REDIS_URL`` is checked against them).
SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel")


class RedisURLError(ValueError):
    """A Redis URL this module cannot turn into a client (names the part that is wrong)."""


def scheme_of(url: str) -> str:
    """The URL's scheme if it is one of :data:`SCHEMES`, else :class:`RedisURLError`."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        allowed = ", ".join(s + "://" for s in SCHEMES[:-1]) + f" or {SCHEMES[-1]}://"
        raise RedisURLError(f"must start with {allowed}, got {url!r}")
    return scheme


def topology(url: str) -> str:
    """``single``, ``cluster`` or ``sentinel``: what kind of deployment the URL names."""
    scheme = scheme_of(url)
    if scheme.endswith("+cluster"):
        return "cluster"
    return "sentinel" if scheme.endswith("+sentinel") else "single"


def check_url(url: str) -> str:
    """Parse ``url`` as :func:`redis_client` would, without connecting; returns its topology.

    Called where a URL is configured (settings, ``from_url``) so a typo fails at startup naming
    the URL, never as an error on a request."""
    kind = topology(url)
    if kind != "single":
        _, _, _, path = _hosts(url)
        if kind == "sentinel":
            _sentinel_service(path, url)
    return kind


def _sentinel_service(path: str, url: str) -> tuple[str, int]:
    service, _, db = path.strip("/").partition("/")
    if not service or (db and not db.isdigit()):
        raise RedisURLError(f"expected /service[/db] after the sentinel hosts, got {path!r} in {url!r}")
    return service, int(db or 0)


def _hosts(url: str) -> tuple[list[tuple[str, int]], str | None, str | None, str]:
    """(host, port) list, username, password and the path of a multi-host URL."""
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, _, pw = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(pw) or None
    nodes = []
    for entry in hostlist.split(","):
        host, sep, port = entry.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisURLError(f"expected host:port[,host:port…] after the scheme, got {entry!r} in {url!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes, username, password, parts.path


def _retry(retries: int) -> Retry:
    return Retry(NoBackoff() if retries == 0 else ExponentialBackoff(cap=1.0, base=0.05), retries)


def redis_client(url: str, *, socket_timeout_s: float, connect_timeout_s: float, retries: int = 0) -> Any:
    """A redis-py client for ``url`` (see the module table). Raises :class:`RedisURLError`.

    A cluster client connects to discover the slot map when it is made, so callers that must
    start while Redis is down (the service) make it lazily, inside their error handling.
    """
    kind = topology(url)
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": connect_timeout_s,
        "health_check_interval": 0,
    }
    if kind == "single":
        return redis.Redis.from_url(url, retry=_retry(retries), **common)
    nodes, username, password, path = _hosts(url)
    auth = {"username": username, "password": password}
    if kind == "cluster":
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in nodes],
            retry=_retry(retries),
            # A cache keeps answering from the slots it still has while some are uncovered.
            require_full_coverage=False,
            ssl=url.lower().startswith("rediss+"),
            **auth,
            **common,
        )
    from redis.sentinel import Sentinel

    service, db = _sentinel_service(path, url)
    sentinel = Sentinel(
        nodes,
        sentinel_kwargs={"socket_timeout": socket_timeout_s, "socket_connect_timeout": connect_timeout_s},
    )
    return sentinel.master_for(service, db=db, retry=_retry(retries), **auth, **common)
