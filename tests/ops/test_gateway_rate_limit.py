"""The HAProxy configuration in docs/operations.md is valid and limits requests per API key.

The documented block is used as written, except for what only a test changes: where it listens,
where the replicas are, and a limit of 5 requests per 10 s instead of 1000 so a few requests reach
it. A real HAProxy (Debian package ``haproxy``) runs in front of a real uvicorn serving the app.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deploy.helpers import ROOT, free_port, require_binary, stop

from recserve.commands import _BackgroundServer
from service.app import create_app
from service.settings import Settings
from training.data import InteractionData

pytestmark = pytest.mark.slow

RUNBOOK = ROOT / "docs" / "operations.md"
KEY_A = "gateway-key-a-0123456789"
KEY_B = "gateway-key-b-0123456789"


def documented_config() -> str:
    block = re.search(r"```haproxy\n(.*?)```", RUNBOOK.read_text(), re.S)
    assert block, "docs/operations.md has no ```haproxy block"
    return block.group(1)


def test_documented_config_is_valid(tmp_path: Path) -> None:
    exe = require_binary("haproxy", "haproxy")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(documented_config())
    result = subprocess.run([exe, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def api(published_store: Path) -> Iterator[int]:
    settings = Settings(store_uri=str(published_store), api_keys=f"{KEY_A},{KEY_B}", _env_file=None)
    server = _BackgroundServer(create_app(settings), "127.0.0.1", 0)
    port = server.start()
    try:
        yield port
    finally:
        server.stop()


def test_the_gateway_limits_each_key_on_its_own(
    api: int, tmp_path: Path, small_data: InteractionData
) -> None:
    exe = require_binary("haproxy", "haproxy")
    port = free_port()
    config = documented_config()
    replaced = {
        "    bind :8080\n": f"    bind 127.0.0.1:{port}\n",
        "gt 1000 }": "gt 5 }",
        "server-template api 10 api:8000 check resolvers dns init-addr none": f"server api1 127.0.0.1:{api}",
    }
    for old, new in replaced.items():
        assert old in config, f"the documented config no longer has {old!r}"
        config = config.replace(old, new)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(config)
    log = tmp_path / "haproxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "-db", "-f", str(cfg)], stdout=out, stderr=out)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "haproxy did not start"
                time.sleep(0.1)
        params = {"user_id": small_data.user_ids[0]}
        a = [httpx.get(f"{base}/recommend", params=params, headers={"X-API-Key": KEY_A}) for _ in range(8)]
        b = httpx.get(f"{base}/recommend", params=params, headers={"X-API-Key": KEY_B})
        anonymous = httpx.get(f"{base}/recommend", params=params)
    finally:
        stop(proc)
    assert [r.status_code for r in a] == [200] * 5 + [429] * 3
    assert a[-1].json()["error"]["code"] == "rate_limited" and a[-1].headers["Retry-After"] == "10"
    assert b.status_code == 200  # another key has its own budget
    assert anonymous.status_code == 401  # not tracked; the service refuses it
