"""Helpers for the deployment tests: the dashboard's queries, free ports, child processes."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "recserve.json"
PROMETHEUS_YML = ROOT / "docker" / "prometheus" / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# Grafana's interval variables, replaced by fixed windows when a query runs outside Grafana.
GRAFANA_VARS = {"$__rate_interval": "15s", "$__range": "5m", "$__interval": "5s"}

_PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL expression) for every target of every panel."""
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]


def concrete(expr: str) -> str:
    """The expression with Grafana's ``$__…`` variables replaced, as Prometheus would receive it."""
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression.

    Label matchers, ``by (…)`` lists, range windows and string literals are removed first; what is
    left that is neither a function call, a keyword nor a number is a metric name.
    """
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        rest = e[m.end() :].lstrip()
        if rest.startswith("(") or m.group().lower() in _PROMQL_KEYWORDS:
            continue
        names.add(m.group())
    return names


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(metric, [(label, op, value), …]) for every ``metric{…}`` selector in the expression."""
    out = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}", expr):
        matchers = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(2))
        out.append((m.group(1), matchers))
    return out


def grouping_labels(expr: str) -> set[str]:
    """Labels named in ``by (…)`` clauses."""
    labels: set[str] = set()
    for m in re.finditer(r"\bby\s*\(([^)]*)\)", expr):
        labels.update(x.strip() for x in m.group(1).split(",") if x.strip())
    return labels


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"`{name}` not found on PATH (Debian package `{package}`; .ci/run installs it)")
    return path


def stop(proc: subprocess.Popen) -> None:
    """Terminate one child we started, then kill it if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


HAPROXY_DIR = ROOT / "docker" / "haproxy"
HAPROXY_CFG = HAPROXY_DIR / "haproxy.cfg"


def render_haproxy_config(
    dest: Path, frontend_port: int, stats_port: int, servers: list[int], rate_limit: int | None = None
) -> Path:
    """The project's haproxy.cfg for loopback: same file, only ports, servers (and the rate limit) swapped.

    The ``server-template`` line (DNS discovery of compose replicas) becomes one ``server`` line per
    port, keeping every option except ``resolvers``/``init-addr``, so health checks, retries and
    draining are exactly the shipped ones. Each rewrite must match exactly once: a config that
    drifted from what this expects fails here instead of being tested half-rewritten.
    """
    text = HAPROXY_CFG.read_text()

    def once(pattern: str, repl: str) -> None:
        nonlocal text
        text, n = re.subn(pattern, repl, text, flags=re.M)
        assert n == 1, f"haproxy.cfg: expected one match of {pattern!r}, found {n}"

    once(r"^(\s*)bind :8080$", rf"\1bind 127.0.0.1:{frontend_port}")
    once(r"^(\s*)bind :8404$", rf"\1bind 127.0.0.1:{stats_port}")
    m = re.search(r"^(\s*)server-template (\S+) \d+ \S+ (.*)$", text, re.M)
    assert m, "haproxy.cfg: no server-template line"
    options = re.sub(r"\s*\b(resolvers \S+|init-addr \S+)", "", m.group(3)).strip()
    lines = [
        f"{m.group(1)}server {m.group(2)}{i + 1} 127.0.0.1:{port} {options}" for i, port in enumerate(servers)
    ]
    text = text[: m.start()] + "\n".join(lines) + text[m.end() :]
    if rate_limit is not None:
        once(r"sc_http_req_rate\(0\) gt \d+", f"sc_http_req_rate(0) gt {rate_limit}")
    shutil.copytree(HAPROXY_DIR / "errors", dest / "errors", dirs_exist_ok=True)
    cfg = dest / "haproxy.cfg"
    cfg.write_text(text)
    return cfg


def haproxy_stats(stats_url: str) -> list[dict[str, str]]:
    """Rows of HAProxy's CSV stats page (one per proxy, server, FRONTEND and BACKEND)."""
    import csv
    import io

    import httpx

    return list(csv.DictReader(io.StringIO(httpx.get(f"{stats_url}/stats;csv", timeout=2).text.lstrip("# "))))


def haproxy_servers(stats_url: str) -> dict[str, str]:
    """{server name: status} of the ``api`` backend."""
    rows = haproxy_stats(stats_url)
    return {
        r["svname"]: r["status"]
        for r in rows
        if r["pxname"] == "api" and r["svname"] not in ("FRONTEND", "BACKEND")
    }
