"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `recserve serve`.

A real ``recserve serve`` process (free loopback port) serves a store with two small versions;
the page is opened at laptop and phone widths. Checked: the live version is ``/readyz``'s and the
store table marks CURRENT and what rollback restores; the request count shown grows after API
calls; the "try it" tables equal the JSON of ``/recommend`` and ``/similar-items`` for the same
options (ids, scores as rendered); after feedback posted through the API, the Feedback section's
per-hour counts and click-through rates equal ``/dashboard/api/feedback``'s JSON; the phone
layout does not scroll sideways; no console errors. A second test puts the data behind a key and
checks the page asks for it.
Screenshots go to ``test-artifacts/dashboard/`` (gitignored); with ``RECSERVE_DOCS_SCREENSHOT=1``
the laptop one also replaces ``docs/dashboard.png`` after a little traffic for the plot.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from browser_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    LAPTOP,
    PHONE,
    ROOT,
    Page,
    Server,
    assert_feedback_shown,
    assert_same_items,
    post_feedback,
    refreshed_feedback,
    rendered_rows,
    traffic,
    wait_until,
)
from fastapi import Depends, Header

from eventstore import open_event_store
from model_store import LocalStore
from service.app import create_app
from service.errors import APIError
from service.routers import dashboard
from service.settings import Settings
from training.data import InteractionData
from training.mf import MFConfig
from training.pipeline import TrainConfig, train_and_publish
from training.ranker_train import RankerConfig

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")


def small_config(loss: str, seed: int) -> TrainConfig:
    """A few seconds of training on the session's small synthetic set."""
    return TrainConfig(
        mf=MFConfig(dim=16, epochs=20, n_negatives=64, batch_size=256, tau=0.3, lr=3e-2, loss=loss),
        ranker=RankerConfig(hidden_units=16, num_layers=2, epochs=2),
        n_candidates=50,
        seed=seed,
    )


@pytest.fixture(scope="module")
def two_version_store(small_data: InteractionData, tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    """Two trained versions (BPR, then SL@K, which is CURRENT): the BPR one is *previous*."""
    store = LocalStore(tmp_path_factory.mktemp("dashboard-store"))
    for loss, seed in (("bpr", 8), ("slatk", 7)):
        version, _ = train_and_publish(small_data, store, small_config(loss, seed), progress=False)
        assert version == store.current_version()
    return store


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite event store of the module's own."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard-events') / 'events.db'}"
    store = open_event_store(url)
    store.upgrade()
    store.close()
    return url


@pytest.fixture(scope="module")
def base_url(two_version_store: LocalStore, database_url: str) -> Iterator[str]:
    server = Server(two_version_store.root, database_url)
    try:
        yield server.wait()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (Debian package chromium; .ci/run installs it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_dashboard_in_chromium(
    browser: Any, base_url: str, two_version_store: LocalStore, small_data: InteractionData
) -> None:
    api = httpx.Client(base_url=base_url, timeout=30)
    laptop = Page(browser, base_url, LAPTOP)
    page = laptop.page

    # Model: the live version is /readyz's; CURRENT and previous are the store's own answer.
    ready = api.get("/readyz").json()
    assert laptop.text("#serving-version") == ready["model_version"]
    page.wait_for_selector("#versions-table tbody tr")
    marked = page.eval_on_selector_all(
        "#versions-table tbody tr", "rows => rows.map(r => [r.dataset.version, r.cells[0].textContent])"
    )
    assert [v for v, marks in marked if "CURRENT" in marks] == [ready["model_version"]]
    assert [v for v, marks in marked if "previous" in marks] == [two_version_store.previous_version()]

    # Live: the request count shown grows after a few API calls.
    page.wait_for_selector("#live-total-requests")
    shown = laptop.count("#live-total-requests")
    for user in small_data.user_ids[:5]:
        assert api.get("/recommend", params={"user_id": user}).status_code == 200
    wait_until(lambda: laptop.count("#live-total-requests") >= shown + 5, "the request count to grow by 5")

    # Try it, every option: the table is the JSON /recommend returns for the same body.
    user = page.get_attribute("#user-examples a", "data-id")
    values = json.loads(
        page.eval_on_selector("#filter-values", "s => JSON.stringify([...s.options].map(o => o.value))")
    )
    chosen = values[1:4]
    page.fill("#rec-user", user)
    page.fill("#rec-k", "7")
    page.uncheck("#rec-exclude-seen")
    page.fill("#rec-diversity", "0.3")
    page.check("#rec-explain")
    page.select_option("#filter-mode", "include")
    page.select_option("#filter-attr", "category")
    page.select_option("#filter-values", chosen)
    page.click("#rec-form button[type=submit]")
    page.wait_for_selector('#rec-result[data-state="done"]')
    body = {
        "user_id": user,
        "exclude_seen": False,
        "k": 7,
        "diversity": 0.3,
        "explain": True,
        "item_filter": {"include": {"category": chosen}},
    }
    assert json.loads(page.get_attribute("#rec-result", "data-request")) == body
    answer = api.post("/recommend", json=body).json()
    rows = rendered_rows(page, "#rec-table")
    assert_same_items(rows, answer)
    assert [r["cells"][-1] for r in rows] == [it["reason"]["text"] for it in answer["items"]]
    history = api.get("/dashboard/api/history", params={"user_id": user, "limit": 50}).json()
    shown_history = page.eval_on_selector_all(
        "#history-table tbody tr", "rows => rows.map(r => r.dataset.itemId)"
    )
    assert shown_history == [it["item_id"] for it in history["items"]] and shown_history

    # Default options for another user (a cacheable query: the page's call fills the cache).
    page.uncheck("#rec-explain")
    page.check("#rec-exclude-seen")
    page.fill("#rec-k", "10")
    page.fill("#rec-diversity", "0")
    page.select_option("#filter-mode", "")
    other = small_data.user_ids[7]
    page.fill("#rec-user", other)
    page.click("#rec-form button[type=submit]")
    page.wait_for_selector('#rec-result[data-state="done"]')
    assert json.loads(page.get_attribute("#rec-result", "data-request"))["user_id"] == other
    plain = {"user_id": other, "k": 10, "exclude_seen": True, "diversity": 0, "explain": False}
    assert_same_items(rendered_rows(page, "#rec-table"), api.post("/recommend", json=plain).json())

    # Similar items: the table is GET /similar-items' answer.
    item = small_data.item_ids[3]
    page.fill("#sim-item", item)
    page.fill("#sim-k", "8")
    page.click("#sim-form button[type=submit]")
    page.wait_for_selector('#sim-result[data-state="done"]')
    similar = api.get("/similar-items", params={"item_id": item, "k": 8}).json()
    assert_same_items(rendered_rows(page, "#sim-table"), similar)

    # Feedback: events posted through the API (credited to lists served above, some not), then
    # the section's per-hour counts and CTR per version are /dashboard/api/feedback's JSON.
    served = [api.get("/recommend", params={"user_id": u, "k": 5}).json() for u in small_data.user_ids[:12]]
    posted = post_feedback(api, [*served, answer, similar], n=60)
    body = refreshed_feedback(laptop, api)
    assert body["available"] and body["total"] == posted
    assert_feedback_shown(page, body)

    # Try it after feedback: the history lists the user's new events first (what exclude_seen
    # now also removes), and the table is still exactly the API's answer for the same body.
    histories = {
        u: api.get("/dashboard/api/history", params={"user_id": u, "limit": 50}).json()
        for u in small_data.user_ids[:12]
    }
    fed = next(u for u, h in histories.items() if h["fresh"])
    page.fill("#rec-user", fed)
    page.click("#rec-form button[type=submit]")
    page.wait_for_selector('#rec-result[data-state="done"]')
    expected_history = [[f["item_id"], f["type"]] for f in histories[fed]["fresh"]]
    expected_history += [[it["item_id"], None] for it in histories[fed]["items"]]
    wait_until(
        lambda: (
            page.eval_on_selector_all(
                "#history-table tbody tr",
                "rows => rows.map(r => [r.dataset.itemId, r.dataset.fresh || null])",
            )
            == expected_history
        ),
        "the history table to show the fresh events, then the training items",
    )
    fed_answer = api.post("/recommend", json=json.loads(page.get_attribute("#rec-result", "data-request")))
    assert_same_items(rendered_rows(page, "#rec-table"), fed_answer.json())
    assert not {f["item_id"] for f in histories[fed]["fresh"]} & {
        it["item_id"] for it in fed_answer.json()["items"]
    }

    if os.environ.get("RECSERVE_DOCS_SCREENSHOT"):
        traffic(api, small_data, seconds=20)
        refreshed_feedback(laptop, api)
    page.wait_for_timeout(2500)  # one more live refresh, so the plot shows the calls above
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-laptop.png"), full_page=True)
    if os.environ.get("RECSERVE_DOCS_SCREENSHOT"):
        shutil.copyfile(ARTIFACTS / "dashboard-laptop.png", ROOT / "docs" / "dashboard.png")

    # Phone width: everything fits the screen (wide tables scroll inside their own box).
    phone = Page(browser, base_url, PHONE)
    phone.page.click("#user-examples a")
    phone.page.wait_for_selector('#rec-result[data-state="done"]')
    phone.page.wait_for_selector("#live-table tbody tr")
    phone.page.wait_for_selector('#feedback[data-state="done"] #fb-ctr-table tbody tr')
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)

    assert laptop.errors == [] and phone.errors == []
    laptop.context.close()
    phone.context.close()
    api.close()


def test_page_asks_for_the_key_when_its_data_is_behind_one(browser: Any, published_store: Path) -> None:
    """With the data router behind a key (as API keys will put it), the page asks for the key on
    the first 401 and then sends it with every call."""

    def require_key(x_api_key: str | None = Header(None)) -> None:
        if x_api_key != "s3cret":
            raise APIError(401, "unauthorized", "a valid X-API-Key is required", "x-api-key")

    app = create_app(Settings(store_uri=str(published_store), dashboard=False, _env_file=None))
    app.include_router(dashboard.page_router)
    app.include_router(dashboard.router, dependencies=[Depends(require_key)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        context = browser.new_context(viewport=LAPTOP)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"http://127.0.0.1:{port}/dashboard")
        page.wait_for_selector("#key-box", state="visible")
        assert page.inner_text("#serving-version") == "…"  # nothing shown without the key
        assert errors and all("401" in e for e in errors)  # the browser logs each refused call
        errors.clear()
        page.fill("#key-input", "s3cret")
        page.click("#key-box button")
        page.wait_for_selector("#model-version")
        page.wait_for_selector("#user-examples a")
        page.wait_for_selector('#feedback[data-state="unavailable"]')  # this app has no event store
        assert "recserve db upgrade" in page.inner_text("#fb-warning")
        assert page.is_hidden("#key-box")
        assert page.inner_text("#serving-version") == app.state.holder.current.version
        assert errors == []
        context.close()
    finally:
        server.should_exit = True
        thread.join(timeout=15)
