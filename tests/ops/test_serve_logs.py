"""``recserve serve`` writes JSON lines, uvicorn's included, with the request id of each request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from deploy.helpers import free_port, stop

from tests.ops.serve_support import wait_until_ready

pytestmark = pytest.mark.slow


def test_serve_logs_json_lines_with_request_ids(published_store: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSERVE_")}
    env.update(
        {"RECSERVE_ACCESS_LOG": "true", "RECSERVE_LOG_FORMAT": "json", "RECSERVE_STORE_POLL_INTERVAL": "0"}
    )
    cmd = [
        sys.executable,
        "-m",
        "recserve.cli",
        "serve",
        "--port",
        str(port),
        "--store",
        str(published_store),
    ]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(proc, base, log)
        resp = httpx.get(
            f"{base}/similar-items", params={"item_id": "no-such-item"}, headers={"X-Request-ID": "cli-1"}
        )
        assert resp.status_code == 404 and resp.headers["X-Request-ID"] == "cli-1"
    finally:
        stop(proc)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    loggers = {line["logger"] for line in lines}
    assert "uvicorn.error" in loggers  # "Uvicorn running on ...", formatted as JSON like ours
    access = [line for line in lines if line["logger"] == "recserve.access"]
    assert [(a["request_id"], a["path"], a["status"]) for a in access] == [("cli-1", "/similar-items", 404)]
