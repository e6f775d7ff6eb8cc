"""Requests aiohttp's own HTTP parser refuses (issue 16 item 6): an over-long request line or
header, or bytes that are not HTTP, are answered as problem+json that echoes nothing of the
request — not aiohttp's text/plain that quotes the first 100 bytes of the offending line (a
subject id from the path, a bearer token's prefix). Sent over a raw socket, since an HTTP
client would refuse to send most of them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from gateway.config.model import Config
from gateway.web.app import create_app

CANARY = "canary-7Qx9-subject"


@pytest.fixture
async def server(config: Config, tmp_path: Path) -> AsyncIterator[TestServer]:
    app = create_app(replace(config, storage_url=f"sqlite:///{tmp_path}/g.db"), env={})
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


async def exchange(server: TestServer, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


LONG = CANARY * 1000  # ~19 kB, over aiohttp's 8190-byte limits
CASES = [
    (
        "request line",
        f"GET /v1/subjects/{LONG}/disclosures HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
        "uri_too_long",
    ),
    (
        "query",
        f"GET /v1/log/entries/1?subject={LONG} HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
        "uri_too_long",
    ),
    (
        "bearer header",
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {LONG}\r\n\r\n",
        431,
        "headers_too_large",
    ),
    (
        "header name",
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-{LONG}: 1\r\n\r\n",
        431,
        "headers_too_large",
    ),
    (
        "cookie",
        f"GET /review/ HTTP/1.1\r\nHost: x\r\nCookie: s={LONG}\r\n\r\n",
        431,
        "headers_too_large",
    ),
    ("not HTTP", f"{CANARY} /x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"),
    ("bad version", f"GET /{CANARY} HTTP/9.{CANARY}\r\nHost: x\r\n\r\n", 400, "invalid_request"),
    ("bad header", f"GET /healthz HTTP/1.1\r\nHost: x\r\n{CANARY}\r\n\r\n", 400, "invalid_request"),
    (
        "control char in path",
        f"GET /v1/subjects/{CANARY}\x01/x HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "invalid_request",
    ),
    (
        "bad chunk",
        "POST /v1/disclosures HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"\r\nzz{CANARY}\r\n",
        400,
        "invalid_request",
    ),
]


@pytest.mark.parametrize(("name", "raw", "status", "code"), CASES, ids=[c[0] for c in CASES])
async def test_parser_refusals_are_problems_that_echo_nothing(
    server: TestServer,
    caplog: pytest.LogCaptureFixture,
    name: str,
    raw: str,
    status: int,
    code: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    got, headers, body = await exchange(server, raw.encode("latin-1"))
    assert got == status, body[:300]
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["type"].endswith(f"/{code}") and problem["status"] == status
    assert "canary" not in body.decode("latin-1").lower()
    assert "canary" not in json.dumps(dict(headers)).lower()


async def test_the_server_still_answers_after_a_refusal(server: TestServer) -> None:
    await exchange(server, f"GET /{LONG} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, _, body = await exchange(server, healthz)
    assert status == 200, body
