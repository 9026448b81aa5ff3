"""A real ``recserve serve`` process in a test: wait until it answers ``/readyz``."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_ready(proc: subprocess.Popen[bytes], base: str, log: Path, timeout_s: float = 120) -> None:
    """Poll ``/readyz`` until 200; fail with the server's log if it exits, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"server not ready in {timeout_s:g} s"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
