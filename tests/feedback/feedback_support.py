"""Helpers for the feedback tests."""

from __future__ import annotations

from fastapi.testclient import TestClient


def metric(client: TestClient, name: str, **labels: str) -> float:
    """One sample of the app's /metrics (0 when absent)."""
    registry = client.app.state.metrics.registry  # type: ignore[attr-defined]
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
