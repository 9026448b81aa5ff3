"""Multiprocess /metrics (``serve --workers N``), in process: a swap leaves one version at 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest, values

from service.metrics import Metrics


@pytest.fixture
def multiproc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """prometheus-client as a worker of ``recserve serve --workers N`` sees it (files in tmp)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 4242))
    return tmp_path


def test_swap_shows_only_the_serving_version(multiproc: Path) -> None:
    m = Metrics()
    m.set_model("v1")
    m.set_model("v2")
    text = generate_latest(m.registry).decode()
    info = [line for line in text.splitlines() if line.startswith("recserve_model_info{")]
    assert info == ['recserve_model_info{version="v2"} 1.0']
    m.set_model("v1")  # a rollback: the old label comes back at 1, the retired one disappears
    text = generate_latest(m.registry).decode()
    info = [line for line in text.splitlines() if line.startswith("recserve_model_info{")]
    assert info == ['recserve_model_info{version="v1"} 1.0']


def test_counts_come_from_the_files_not_twice(multiproc: Path) -> None:
    m = Metrics()
    m.requests.labels("/recommend", "GET", "200").inc(3)
    assert list(multiproc.glob("counter_4242.db"))  # written where every worker's scrape reads
    text = generate_latest(m.registry).decode()
    assert 'recserve_requests_total{endpoint="/recommend",method="GET",status="200"} 3.0' in text
    assert text.count("# TYPE recserve_requests_total counter") == 1
    assert "python_info" in text
    # process_* once: the whole server's (service/procmetrics.py), not also this worker's own
    assert text.count("# TYPE process_cpu_seconds_total counter") == 1
    assert "process_open_fds" not in text
