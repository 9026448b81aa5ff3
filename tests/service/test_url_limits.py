"""The request-target limit: every GET the schema allows fits it, and a longer one is refused in
the one JSON error shape — through a real uvicorn with the service's HTTP protocol, since only
a real HTTP parser has the limit."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httptools
import orjson
import pytest
import uvicorn

from service.app import create_app
from service.http_protocol import PROTOCOL
from service.limits import MAX_URL_BYTES
from service.settings import Settings

WIDE = "\U0001f600"  # 4 bytes of UTF-8: 12 bytes once percent-encoded, the worst case per character


def _longest(schema: dict[str, Any]) -> Any:
    """The value of ``schema`` that takes the most bytes in a query string."""
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    branch = branches[0]
    kind = branch.get("type")
    if kind == "string":
        return WIDE * branch["maxLength"]
    if kind == "array":
        return [_longest(branch["items"])] * branch["maxItems"]
    if kind == "integer":
        return branch["maximum"]
    if kind == "number":
        return "0.30000000000000004"  # 19 characters: longer than any float repr in 0..1 but subnormals
    if kind == "boolean":
        return "false"
    raise AssertionError(f"no worst case for {branch}")


def worst_case_urls(openapi: dict[str, Any]) -> dict[str, str]:
    urls = {}
    for path, ops in openapi["paths"].items():
        params = ops.get("get", {}).get("parameters", [])
        query = {p["name"]: _longest(p["schema"]) for p in params if p["in"] == "query"}
        if query:
            urls[path] = f"{path}?{urlencode(query, doseq=True)}"
    return urls


@pytest.fixture(scope="module")
def server(published_store: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """The app under uvicorn with the service's protocol, in a thread, on a free loopback port."""
    app = create_app(Settings(store_uri=str(published_store), store_poll_interval=0, _env_file=None))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=PROTOCOL, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield "127.0.0.1", srv.servers[0].sockets[0].getsockname()[1], app.openapi()
    srv.should_exit = True
    thread.join(10)


def raw_request(host: str, port: int, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` as is (httpx refuses long URLs itself); return status, headers and body."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data:
                header, _, body = data.partition(b"\r\n\r\n")
                lines = header.decode("latin-1").split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:])
                if len(body) >= int(headers.get("content-length", -1)):
                    return int(lines[0].split()[1]), headers, body
    raise AssertionError(f"incomplete response: {data[:200]!r}")


def get(target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def test_every_schema_valid_get_fits_the_parser_limit(client) -> None:  # type: ignore[no-untyped-def]
    urls = worst_case_urls(client.get("/openapi.json").json())
    assert {"/recommend", "/similar-items"} <= set(urls)
    for path, url in urls.items():
        print(f"{path}: longest schema-valid request target {len(url):,} of {MAX_URL_BYTES:,} bytes")
        assert len(url) <= MAX_URL_BYTES
        httptools.parse_url(url.encode())  # uvicorn's parser takes it


def test_the_longest_valid_get_is_answered(server: tuple[str, int, dict[str, Any]]) -> None:
    host, port, openapi = server
    for path, url in worst_case_urls(openapi).items():
        status, headers, body = raw_request(host, port, get(url))
        assert headers["content-type"] == "application/json"
        if path == "/similar-items":  # a made-up item: parsed in full, then not found
            assert status == 404 and orjson.loads(body)["error"]["code"] == "unknown_item"
        else:  # a made-up user: the popularity fallback
            assert status == 200 and orjson.loads(body)["strategy"] == "popularity"


def test_an_over_long_target_is_a_414_in_the_error_shape(server: tuple[str, int, dict[str, Any]]) -> None:
    host, port, _ = server
    status, headers, body = raw_request(host, port, get("/recommend?user_id=" + "a" * MAX_URL_BYTES))
    assert status == 414 and headers["content-type"] == "application/json"
    error = orjson.loads(body)["error"]
    assert error["code"] == "uri_too_long" and str(MAX_URL_BYTES) in error["message"]
    assert error["field"] is None


def test_an_unparsable_request_is_a_400_in_the_error_shape(server: tuple[str, int, dict[str, Any]]) -> None:
    host, port, _ = server
    status, headers, body = raw_request(host, port, b"GET /recommend HTTP/1.1\r\nHo st: x\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert orjson.loads(body)["error"]["code"] == "bad_request"
    # the connection after a refusal is closed, and the server keeps answering new ones
    assert raw_request(host, port, get("/healthz"))[0] == 200


def test_recserve_serve_uses_the_protocol(monkeypatch: pytest.MonkeyPatch, published_store: Path) -> None:
    from recserve.cli import main

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    assert main(["serve", "--store", str(published_store), "--port", "0"]) == 0
    assert seen["http"] == PROTOCOL
