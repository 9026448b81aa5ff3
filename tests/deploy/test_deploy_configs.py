"""The deployment files are valid for the tools that read them, and agree with each other."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from deploy.helpers import COMPOSE, DASHBOARD, DOCKERFILE, PROMETHEUS_YML, ROOT, metric_names, require_binary

SERVICES = {"api", "redis", "prometheus", "grafana", "trainer", "precompute", "postgres", "retrain"}


# Variables the compose file requires (`${VAR:?…}`), as an operator would export them.
REQUIRED_ENV = {"RECSERVE_API_KEYS": "compose-check-key-0123456789"}


def _compose(*args: str) -> subprocess.CompletedProcess:
    exe = require_binary("docker-compose", "docker-compose")
    env = {**os.environ, **REQUIRED_ENV}
    return subprocess.run(
        [exe, "-f", str(COMPOSE), *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )


def _resolved_compose() -> dict:
    """The compose file as docker-compose resolves it (anchors merged, variables substituted)."""
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _command(service: dict) -> str:
    cmd = service["command"]
    return cmd if isinstance(cmd, str) else " ".join(cmd)


def test_compose_file_is_valid() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_defines_the_whole_stack() -> None:
    assert set(_resolved_compose()["services"]) == SERVICES


def test_compose_runs_the_recserve_commands_on_one_store() -> None:
    services = _resolved_compose()["services"]
    assert "recserve train --dataset synthetic --store /store" in _command(services["trainer"])
    assert _command(services["precompute"]).startswith("recserve precompute --store /store")
    assert _command(services["api"]).startswith("recserve serve --host 0.0.0.0")
    for name in ("trainer", "precompute", "api"):
        volume = services[name]["volumes"][0]
        assert volume.split(":")[:2] == ["store", "/store"], name
        assert services[name]["image"] == services["api"]["image"], name
    assert "recserve db upgrade" in _command(services["trainer"])  # before anything uses the events
    assert "recserve retrain --store /store" in _command(services["retrain"])
    assert services["retrain"]["volumes"][0] == "store:/store:rw"  # it publishes
    for name in ("trainer", "api", "retrain"):
        url = services[name]["environment"]["RECSERVE_DATABASE_URL"]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url, name
    assert any(":/var/lib/postgresql/data" in v for v in services["postgres"]["volumes"])  # kept
    for name in ("precompute", "api", "retrain"):
        assert services[name]["environment"]["RECSERVE_REDIS_URL"].startswith("redis://redis:"), name
        assert services[name]["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_prometheus_config_is_valid() -> None:
    exe = require_binary("promtool", "prometheus")
    result = subprocess.run(
        [exe, "check", "config", str(PROMETHEUS_YML)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ports_agree_across_dockerfile_compose_and_scrape_config() -> None:
    dockerfile = DOCKERFILE.read_text()
    exposed = re.search(r"^EXPOSE (\d+)", dockerfile, re.M)
    assert exposed, "Dockerfile has no EXPOSE"
    port = int(exposed.group(1))
    assert re.search(rf"RECSERVE_PORT={port}\b", dockerfile)
    api = _resolved_compose()["services"]["api"]
    assert int(api["environment"]["RECSERVE_PORT"]) == port
    assert [int(p["target"]) for p in api["ports"]] == [port]
    scrape = yaml.safe_load(PROMETHEUS_YML.read_text())
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "recserve")
    assert job["dns_sd_configs"][0]["names"] == ["api"]
    assert job["dns_sd_configs"][0]["port"] == port


def test_dockerfile_is_multistage_non_root_with_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert "download.pytorch.org/whl/cpu" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK ", text, re.M)


def test_healthcheck_path_answers_200_once_a_model_is_loaded(client: TestClient) -> None:
    healthcheck = re.search(r"^HEALTHCHECK .*$(?:\n\s+.*)*", DOCKERFILE.read_text(), re.M)
    assert healthcheck
    path = re.search(r"http://127\.0\.0\.1:%s(/\w+)", healthcheck.group())
    assert path, healthcheck.group()
    assert client.get(path.group(1)).status_code == 200


def test_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_grafana_loads_the_dashboard_from_where_compose_mounts_it() -> None:
    grafana = _resolved_compose()["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    provider = yaml.safe_load((ROOT / "docker/grafana/provisioning/dashboards/recserve.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert Path(mounts[path]) == DASHBOARD.parent
    assert Path(mounts["/etc/grafana/provisioning"]) == ROOT / "docker/grafana/provisioning"
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{path}/{DASHBOARD.name}"


def test_dashboard_has_the_panels_the_issue_asks_for() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le, endpoint) (rate(recserve_request_latency" in exprs
    used = metric_names(exprs)
    for name in (
        "recserve_requests_total",
        "recserve_cache_requests_total",
        "recserve_stage_latency_seconds_bucket",
        "recserve_model_info",
    ):
        assert name in used, name
    assert 'status=~"5.."' in exprs  # error rate


def test_metric_name_extraction() -> None:
    """The helper the metric-existence test relies on: labels, windows and functions are not names."""
    expr = (
        "histogram_quantile(0.99, sum by (le, endpoint) "
        '(rate(a_bucket{endpoint!~"/x|y",s="2"}[$__rate_interval])))'
        " / sum(rate(b_total[5m])) or vector(0)"
    )
    assert metric_names(expr) == {"a_bucket", "b_total"}
