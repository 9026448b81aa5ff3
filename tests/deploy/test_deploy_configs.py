"""The deployment files are valid for the tools that read them, and agree with each other."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from deploy.helpers import (
    COMPOSE,
    DASHBOARD,
    DOCKERFILE,
    HAPROXY_CFG,
    PROMETHEUS_YML,
    ROOT,
    free_port,
    metric_names,
    render_haproxy_config,
    require_binary,
)

SERVICES = {"api", "lb", "redis", "prometheus", "grafana", "trainer", "precompute", "postgres", "retrain"}
ONE_SHOT = {"trainer", "precompute"}
# A scheduler loop (sleep, retrain, repeat): no request to probe; its health is the model's age
# (the RecserveModelStale alert), so like a one-shot job it carries no healthcheck.
SCHEDULED = {"retrain"}
# Variables the compose file requires (`${VAR:?…}`), as an operator would export them: Grafana's
# admin password and the API keys; these tests resolve the file with dummy ones.
COMPOSE_ENV = {"GRAFANA_ADMIN_PASSWORD": "test-only", "RECSERVE_API_KEYS": "compose-check-key-0123456789"}


def _compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    exe = require_binary("docker-compose", "docker-compose")
    environ = {k: v for k, v in os.environ.items() if k not in ("GRAFANA_ADMIN_PASSWORD", "API_PORT")}
    return subprocess.run(
        [exe, "-f", str(COMPOSE), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **(COMPOSE_ENV if env is None else env)},
    )


def _resolved_compose() -> dict:
    """The compose file as docker-compose resolves it (anchors merged, variables substituted)."""
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _ports(service: dict) -> list[tuple[str | None, int]]:
    """(host ip or None, container port) of each published port; docker-compose 1.29 resolves ports
    with a host ip to ``"ip:host:container/tcp"`` strings and the others to mappings."""
    out = []
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.append((p.get("host_ip"), int(p["target"])))
        else:
            ip, _, container = p.rsplit("/", 1)[0].split(":")
            out.append((ip, int(container)))
    return out


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


def test_ports_agree_across_dockerfile_compose_haproxy_and_scrape_config() -> None:
    dockerfile = DOCKERFILE.read_text()
    exposed = re.search(r"^EXPOSE (\d+)", dockerfile, re.M)
    assert exposed, "Dockerfile has no EXPOSE"
    port = int(exposed.group(1))
    assert re.search(rf"RECSERVE_PORT={port}\b", dockerfile)
    services = _resolved_compose()["services"]
    api = services["api"]
    assert int(api["environment"]["RECSERVE_PORT"]) == port
    assert "ports" not in api, "a fixed host port on api breaks `--scale api=N`"
    template = re.search(r"^\s*server-template \S+ \d+ (\S+):(\d+) ", HAPROXY_CFG.read_text(), re.M)
    assert template and template.groups() == ("api", str(port))
    assert [port for _, port in _ports(services["lb"])] == [8080, 8404]
    assert re.search(r"^\s*bind :8080$", HAPROXY_CFG.read_text(), re.M)
    scrape = yaml.safe_load(PROMETHEUS_YML.read_text())
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "recserve")
    assert job["dns_sd_configs"][0]["names"] == ["api"]
    assert job["dns_sd_configs"][0]["port"] == port
    haproxy = next(j for j in scrape["scrape_configs"] if j["job_name"] == "haproxy")
    assert haproxy["static_configs"][0]["targets"] == ["lb:8404"]


def test_haproxy_config_is_valid() -> None:
    exe = require_binary("haproxy", "haproxy")
    result = subprocess.run([exe, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_checks_readiness_and_replays_only_reads_on_another_replica() -> None:
    cfg = HAPROXY_CFG.read_text()
    backend = cfg[cfg.index("backend api") :].split("\nlisten ")[0]
    assert "http-check send meth GET uri /readyz" in backend and "http-check expect status 200" in backend
    assert re.search(r"^\s*option redispatch 1$", backend, re.M)
    retry_on = re.search(r"^\s*retry-on (.*)$", backend, re.M)
    assert retry_on and {"conn-failure", "empty-response"} <= set(retry_on.group(1).split())
    assert re.search(r"^\s*http-request disable-l7-retry if !read_only$", backend, re.M)
    assert "resolvers docker" in backend  # replicas come from DNS: `--scale` needs no edit


def test_every_service_is_hardened_and_limited() -> None:
    for name, service in _resolved_compose()["services"].items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"] and not service.get("cap_add"), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("mem_limit") and service.get("pids_limit"), name
        if name not in ONE_SHOT:
            assert service.get("cpus"), name


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in _resolved_compose()["services"].items():
        check = service.get("healthcheck", {})
        if name in ONE_SHOT | SCHEDULED:  # `disable: true` resolves to test NONE: nothing to wait for
            assert check.get("disable") is True or check.get("test") == ["NONE"], name
        elif name == "api":  # the image's own HEALTHCHECK (/readyz), checked with the Dockerfile
            assert not check, "api: restating the image's HEALTHCHECK in compose would shadow it"
        else:
            test = check.get("test")
            assert test and test[0] == "CMD", name
            # podman's Docker API re-splits CMD arguments at spaces: keep each argument space-free
            assert not any(" " in arg for arg in test), f"{name}: {test}"


def test_lb_healthcheck_script_passes_on_a_monitor_200_and_fails_otherwise(
    tmp_path: Path, children: list[subprocess.Popen]
) -> None:
    script = ROOT / "docker/haproxy/healthcheck.sh"
    assert (
        "/usr/local/etc/haproxy/healthcheck.sh"
        in _resolved_compose()["services"]["lb"]["healthcheck"]["test"]
    )
    haproxy = require_binary("haproxy", "haproxy")
    stats = free_port()
    cfg = render_haproxy_config(tmp_path, free_port(), stats, [free_port()])
    patched = tmp_path / "healthcheck.sh"
    patched.write_text(script.read_text().replace("/8404", f"/{stats}"))
    assert subprocess.run(["bash", str(patched)], timeout=10).returncode != 0  # nothing listening yet
    children.append(subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL))
    deadline = time.monotonic() + 20
    while subprocess.run(["bash", str(patched)], timeout=10).returncode != 0:
        assert time.monotonic() < deadline, "lb healthcheck never passed against a running HAProxy"
        time.sleep(0.2)


def test_images_are_pinned_to_exact_versions() -> None:
    for name, service in _resolved_compose()["services"].items():
        image = service["image"]
        if image == "recserve:latest":  # built here from the Dockerfile
            continue
        # PostgreSQL's releases are MAJOR.MINOR (16.4 is exact); everything else MAJOR.MINOR.PATCH.
        exact = r":\d+\.\d+-" if image.startswith("postgres:") else r":v?\d+\.\d+\.\d+"
        assert "@sha256:" in image or re.search(exact, image), f"{name}: {image}"


def test_grafana_has_no_default_admin_password() -> None:
    without_grafana = {k: v for k, v in COMPOSE_ENV.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    result = _compose("config", "-q", env=without_grafana)
    assert result.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in result.stderr
    env = _resolved_compose()["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == COMPOSE_ENV["GRAFANA_ADMIN_PASSWORD"]


def test_monitoring_is_bound_to_localhost_and_the_api_is_not() -> None:
    services = _resolved_compose()["services"]
    for name in ("prometheus", "grafana"):
        assert [ip for ip, _ in _ports(services[name])] == ["127.0.0.1"], name
    lb = {port: ip for ip, port in _ports(services["lb"])}
    assert lb == {8080: None, 8404: "127.0.0.1"}  # the API on every interface, stats on loopback


def test_test_override_only_swaps_images_and_keeps_grafana_out() -> None:
    override = yaml.safe_load((ROOT / "docker/test/compose.podman.yml").read_text())["services"]
    assert {k for s in override.values() for k in s} <= {"image", "profiles"}
    result = subprocess.run(
        [require_binary("docker-compose", "docker-compose"), "-f", str(COMPOSE), "-f",
         str(ROOT / "docker/test/compose.podman.yml"), "config", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **COMPOSE_ENV},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


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


def test_the_build_context_lets_in_every_package_the_project_installs() -> None:
    """.dockerignore is an allow-list: a package pyproject.toml installs but the list leaves out
    is missing from the image, and the build's import check fails (eventstore was, once)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].strip("/") for line in lines if line.startswith("!")}
    assert packages <= allowed, f"not in .dockerignore's allow-list: {sorted(packages - allowed)}"
