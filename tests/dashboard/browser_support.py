"""Helpers of the browser test (tests/dashboard/test_browser.py): the server process, a page
that records console errors, and what the page must show for a given JSON answer."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx

from training.data import InteractionData

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("RECSERVE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "dashboard"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


class Server:
    """``recserve serve --port 0`` in a child process; the port is read from uvicorn's log."""

    def __init__(self, store: Path, database_url: str) -> None:
        env = {
            **os.environ,
            "RECSERVE_STORE_POLL_INTERVAL": "0",
            "RECSERVE_LOG_LEVEL": "info",
            "RECSERVE_DATABASE_URL": database_url,
        }
        cmd = [sys.executable, "-m", "recserve.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
        self.proc = subprocess.Popen(
            [*cmd, "--store", str(store)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.base: str | None = None
        self._started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            m = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            if m:
                self.base = m.group(1)
                self._started.set()
        self._started.set()

    def wait(self, timeout: float = 120) -> str:
        self._started.wait(timeout)
        if self.base is None:
            raise AssertionError("recserve serve did not start:\n" + "\n".join(self.lines[-30:]))
        return self.base

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Page:
    """A page at one viewport size, recording console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base: str, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.goto(f"{base}/dashboard")
        self.page.wait_for_selector("#model-version")  # the model section has rendered
        self.page.wait_for_selector("#user-examples a")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector).strip()

    def count(self, selector: str) -> int:
        return int(self.text(selector).replace(",", ""))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll ``condition`` (the page refreshes every 2 s); ``page.wait_for_function`` would need
    ``eval``, which the page's Content-Security-Policy rightly forbids."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def as_rendered(score: float) -> str:
    """``Number.prototype.toFixed(4)``: the exact binary value, ties away from zero."""
    return str(Decimal(score).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def rendered_rows(page: Any, table: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        f"{table} tbody tr",
        """rows => rows.map(r => ({
            item_id: r.querySelector('.item-id').textContent,
            score_text: r.querySelector('.score').textContent,
            score: Number(r.querySelector('.score').dataset.score),
            cells: Array.from(r.children).map(c => c.textContent),
        }))""",
    )


def assert_same_items(rows: list[dict[str, Any]], answer: dict[str, Any]) -> None:
    assert [r["item_id"] for r in rows] == [it["item_id"] for it in answer["items"]]
    assert [r["score"] for r in rows] == [it["score"] for it in answer["items"]]
    assert [r["score_text"] for r in rows] == [as_rendered(it["score"]) for it in answer["items"]]


def post_feedback(api: httpx.Client, answers: list[dict[str, Any]], n: int) -> int:
    """``n`` events over the last 12 hours: most credited to a served list (its ``recomm_id``),
    some without one, one in another system's format. Returns how many were stored."""
    rng = random.Random(20)
    now = time.time()
    events = []
    for i in range(n):
        answer = rng.choice(answers)
        event: dict[str, Any] = {
            "user_id": answer.get("user_id", "u-anon"),
            "item_id": rng.choice(answer["items"])["item_id"],
            "type": rng.choices(["view", "click", "purchase", "like"], weights=[5, 4, 1, 1])[0],
            "timestamp": now - rng.uniform(0, 12 * 3600) if i % 3 else now - rng.uniform(0, 60),
        }
        if i % 7:
            event["recomm_id"] = answer["recomm_id"]
        elif i == 14:
            event["recomm_id"] = "from-another-system"
        events.append(event)
    resp = api.post("/feedback", json={"events": events})
    assert resp.status_code == 202, resp.text
    return int(resp.json()["accepted"])


def refreshed_feedback(page: Page, api: httpx.Client) -> dict[str, Any]:
    """Press the section's Refresh and wait for its answer; returns the JSON the endpoint gives
    now (nothing is served or posted in between, so it is the same data)."""
    before = page.page.get_attribute("#feedback", "data-at") or "0"
    page.page.click("#fb-form button[type=submit]")
    wait_until(
        lambda: float(page.page.get_attribute("#feedback", "data-at") or 0) > float(before),
        "the feedback section to refresh",
    )
    return api.get("/dashboard/api/feedback", params={"hours": 48}).json()


def as_percent(x: float | None) -> str:
    """``(100 * x).toFixed(2) + "%"`` as the page renders a rate."""
    if x is None:
        return "—"
    return f"{Decimal(100 * x).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}%"


def assert_feedback_shown(page: Any, body: dict[str, Any]) -> None:
    hours = page.eval_on_selector_all(
        "#fb-hours-table tbody tr",
        """rows => rows.map(r => [r.dataset.hour,
            Object.fromEntries(Array.from(r.querySelectorAll('td[data-type]'))
                .map(c => [c.dataset.type, c.textContent])),
            r.querySelector('td.sum').textContent])""",
    )
    expected = [
        [str(h["hour"]), {t: f"{h['counts'][t]:,}" for t in body["types"]}, f"{h['total']:,}"]
        for h in reversed(body["per_hour"])
        if h["total"] > 0
    ]
    expected.append(["total", {t: f"{body['totals'][t]:,}" for t in body["types"]}, f"{body['total']:,}"])
    assert hours == expected
    versions = page.eval_on_selector_all(
        "#fb-ctr-table tbody tr",
        """rows => rows.map(r => ({
            version: r.dataset.version,
            lists: r.querySelector('td.lists').textContent,
            credited: Object.fromEntries(Array.from(r.querySelectorAll('td[data-type]'))
                .map(c => [c.dataset.type, c.textContent])),
            ctr_text: r.querySelector('td.ctr').textContent,
            ctr: r.querySelector('td.ctr').dataset.ctr,
        }))""",
    )
    assert [v["version"] for v in versions] == [r["model_version"] or "" for r in body["by_version"]]
    for shown, row in zip(versions, body["by_version"], strict=True):
        assert shown["lists"] == f"{row['lists_served']:,}"
        assert shown["credited"] == {t: f"{row['credited'][t]:,}" for t in body["types"]}
        assert shown["ctr_text"] == as_percent(row["ctr"])
        assert (float(shown["ctr"]) if shown["ctr"] else None) == row["ctr"]
    serving = body["by_version"][0]
    assert serving["serving"] and serving["ctr"] is not None and serving["ctr"] > 0
    assert page.inner_text("#fb-serving-ctr") == as_percent(serving["ctr"])


def traffic(api: httpx.Client, data: InteractionData, seconds: float) -> None:
    """A little steady traffic (a few 404s among it) so the docs screenshot has a latency line."""
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        api.get("/recommend", params={"user_id": data.user_ids[i % 50], "k": 10})
        api.get("/similar-items", params={"item_id": data.item_ids[i % 50]})
        if i % 40 == 0:
            api.get("/similar-items", params={"item_id": "no-such-item"})
        i += 1
        time.sleep(0.05)
