"""`recserve demo --once`: the newcomer's first command, end to end over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_once_trains_publishes_serves_and_answers(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "RECSERVE_STORE_URI": str(tmp_path / "store"),
        "RECSERVE_DATABASE_URL": f"sqlite:///{tmp_path / 'events.db'}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "recserve.cli", "demo", "--once", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "GET /recommend?user_id=u0&k=5 -> 200" in out
    assert "GET /similar-items?item_id=i0&k=5 -> 200" in out
    assert "two_stage" in out
    # the answers printed are real JSON bodies from the server
    first = out.index("-> 200") + len("-> 200")
    body = json.JSONDecoder().raw_decode(out[first:].lstrip())[0]
    assert len(body["items"]) == 5 and body["user_id"] == "u0"
    assert "POST /feedback" in out and "-> 202" in out and "clicked, so left out" in out
    top = body["items"][0]["item_id"]
    again = out.split(" again: ", 1)[1].split(" (", 1)[0].split(", ")
    assert len(again) == 5 and top not in again
    assert (tmp_path / "events.db").exists()  # the demo migrated its own event store
    versions = list((tmp_path / "store" / "versions").iterdir())
    assert len(versions) == 1 and body["model_version"] == versions[0].name
